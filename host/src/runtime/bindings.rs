//! Host-side bindings for the `step` world, generated from `wit/`.

wasmtime::component::bindgen!({
    world: "step",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});
