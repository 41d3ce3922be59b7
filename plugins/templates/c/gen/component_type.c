// Stands in for the step_component_type.o that `wit-bindgen c` writes without
// --no-object-file: step.c links against this symbol. The world's type
// information is embedded after linking instead, by `jco embed` (or
// `wasm-tools component embed`), from the WIT in ../wit.
void __component_type_object_force_link_step(void) {}
