//! The functions that charge an evaluation's meter: the calls the rewrite
//! inserts (`rewrite.rs`), and bounded versions of the member functions
//! whose result can be far larger than their arguments (`join`, `replace`)
//! or whose time is not linear in them (`distinct`, `indexOf`,
//! `lastIndexOf`). Their names start with `@`, which CEL source cannot
//! spell, so only the rewrite calls them.

use cel::common::types::{CelBytes, CelInt, CelList, CelMap, CelString, DYN_TYPE, Kind};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::meter::{self, Stop};

/// Counts one comprehension step; passes its argument through.
pub(super) const TICK: &str = "@tick";
/// Counts `n` steps for `lists.range(n)`; passes `n` through.
pub(super) const STEPS: &str = "@steps";
/// Counts the bytes of a value about to be copied into a list or map it
/// builds, unless it is already a value of its own.
pub(super) const COPY: &str = "@copy";
/// Counts the bytes of a value an operator or a function built.
pub(super) const BUILT: &str = "@built";

/// Member functions replaced by bounded versions: the name written, the
/// replacement, and whether its result is still counted by [`BUILT`] (the
/// others count what they build before they build it, or build a number).
pub(super) const REPLACED: &[(&str, &str, bool)] = &[
    ("join", "@join", false),
    ("replace", "@replace", false),
    ("distinct", "@distinct", true),
    ("indexOf", "@indexOf", false),
    ("lastIndexOf", "@lastIndexOf", false),
];

type Args<'b, 'v> = Vec<CowVal<'b, 'v>>;
type Out<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

/// Registers the functions on `env`.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(TICK, "@tick(dyn)", vec![DYN_TYPE], tick)?;
    env.add_overload(STEPS, "@steps(dyn)", vec![DYN_TYPE], steps)?;
    env.add_overload(COPY, "@copy(dyn)", vec![DYN_TYPE], copy)?;
    env.add_overload(BUILT, "@built(dyn)", vec![DYN_TYPE], built)?;
    env.add_member_overload("@join", "@join()", DYN_TYPE, vec![], join)?;
    env.add_member_overload("@join", "@join(dyn)", DYN_TYPE, vec![DYN_TYPE], join)?;
    let two = || vec![DYN_TYPE, DYN_TYPE];
    let three = || vec![DYN_TYPE, DYN_TYPE, DYN_TYPE];
    env.add_member_overload("@replace", "@replace(dyn,dyn)", DYN_TYPE, two(), replace)?;
    env.add_member_overload(
        "@replace",
        "@replace(dyn,dyn,dyn)",
        DYN_TYPE,
        three(),
        replace,
    )?;
    env.add_member_overload("@distinct", "@distinct()", DYN_TYPE, vec![], distinct)?;
    env.add_member_overload(
        "@indexOf",
        "@indexOf(dyn)",
        DYN_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload("@indexOf", "@indexOf(dyn,dyn)", DYN_TYPE, two(), index_of)?;
    let last = "@lastIndexOf";
    env.add_member_overload(
        last,
        "@lastIndexOf(dyn)",
        DYN_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    env.add_member_overload(
        last,
        "@lastIndexOf(dyn,dyn)",
        DYN_TYPE,
        two(),
        last_index_of,
    )?;
    Ok(())
}

/// The error a spent meter raises. The evaluation reports the meter's own
/// message instead (see `Expr::eval`).
fn spent(function: &str) -> impl FnOnce(Stop) -> ExecutionError + '_ {
    move |stop| ExecutionError::function_error(function, stop.message())
}

fn only<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let n = args.len();
    let [value] =
        <[_; 1]>::try_from(args).map_err(|_| ExecutionError::invalid_argument_count(1, n))?;
    Ok(value)
}

fn tick<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    meter::tick(1).map_err(spent(TICK))?;
    only(args)
}

fn steps<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let n = only(args)?;
    if let Some(n) = n.downcast_ref::<CelInt>()
        && let Ok(n) = u64::try_from(*n.inner())
    {
        meter::tick(n).map_err(spent(STEPS))?;
    }
    Ok(n)
}

fn copy<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let value = only(args)?;
    if value.is_borrowed() {
        meter::charge(size(&*value)).map_err(spent(COPY))?;
    }
    Ok(value)
}

fn built<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let value = only(args)?;
    if value.is_owned() {
        meter::charge(size(&*value)).map_err(spent(BUILT))?;
    }
    Ok(value)
}

/// The bytes a built value is counted for: its [`weight`], but nothing for a
/// number, a boolean or null, which hold no memory of their own.
fn size(value: &dyn Val) -> u64 {
    match value.get_type().kind() {
        Kind::String | Kind::Bytes | Kind::List | Kind::Map => weight(value),
        _ => 0,
    }
}

/// About how many bytes a value holds: string and byte lengths, plus a
/// little for every value, list and map entry.
fn weight(value: &dyn Val) -> u64 {
    if let Some(s) = value.downcast_ref::<CelString>() {
        24 + s.inner().len() as u64
    } else if let Some(b) = value.downcast_ref::<CelBytes>() {
        24 + b.inner().len() as u64
    } else if let Some(list) = value.downcast_ref::<CelList>() {
        list.inner()
            .iter()
            .fold(24, |n: u64, v| n.saturating_add(weight(v.as_ref())))
    } else if let Some(map) = value.downcast_ref::<CelMap>() {
        map.inner().iter().fold(48, |n: u64, (k, v)| {
            n.saturating_add(weight(k.inner()))
                .saturating_add(weight(v.as_ref()))
        })
    } else {
        16
    }
}

/// The error of a call no overload of `function` accepts.
fn no_overload(function: &str, args: &[CowVal<'_, '_>]) -> ExecutionError {
    let types = args
        .iter()
        .map(|a| a.get_type().name().to_owned())
        .collect();
    ExecutionError::no_such_member_overload(function, types)
}

fn string(value: &dyn Val) -> Option<&str> {
    value.downcast_ref::<CelString>().map(|s| s.inner())
}

/// `list.join()`, `list.join(sep)`: counts the string before building it.
fn join<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let (list, sep) = match args.as_slice() {
        [list] => (list, Some("")),
        [list, sep] => (list, string(&**sep)),
        _ => return Err(no_overload("join", &args)),
    };
    let (Some(sep), Some(items)) = (sep, list.as_iterable()) else {
        return Err(no_overload("join", &args));
    };
    if list.get_type().kind() != Kind::List {
        return Err(no_overload("join", &args));
    }
    let mut parts = Vec::new();
    let mut items = items.iter();
    while let Some(item) = items.next() {
        parts.push(string(item).ok_or_else(|| ExecutionError::UnexpectedType {
            got: item.get_type().name().to_owned(),
            want: "string".to_owned(),
        })?);
    }
    let seps = sep.len().saturating_mul(parts.len().saturating_sub(1));
    let size = parts.iter().map(|p| p.len()).sum::<usize>() + seps;
    meter::charge(24 + size as u64).map_err(spent("join"))?;
    Ok(CowVal::owned(CelString::from(parts.join(sep))))
}

/// `s.replace(from, to)`, `s.replace(from, to, n)`: counts the result
/// before building it.
fn replace<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let (s, from, to, n) = match args.as_slice() {
        [s, from, to] => (string(&**s), string(&**from), string(&**to), None),
        [s, from, to, n] => {
            let n = n.downcast_ref::<CelInt>().map(|n| *n.inner());
            let Some(n) = n else {
                return Err(no_overload("replace", &args));
            };
            (string(&**s), string(&**from), string(&**to), Some(n))
        }
        _ => return Err(no_overload("replace", &args)),
    };
    let (Some(s), Some(from), Some(to)) = (s, from, to) else {
        return Err(no_overload("replace", &args));
    };
    // A negative count replaces every match, as CEL's own `replace` does.
    let limit = n.and_then(|n| usize::try_from(n).ok());
    let matches = s.matches(from).count();
    let count = limit.map_or(matches, |l| l.min(matches)) as u64;
    let size = (s.len() as u64 - count * from.len() as u64)
        .saturating_add(count.saturating_mul(to.len() as u64));
    meter::charge(24 + size).map_err(spent("replace"))?;
    let out = match limit {
        Some(l) => s.replacen(from, to, l),
        None => s.replace(from, to),
    };
    Ok(CowVal::owned(CelString::from(out)))
}

/// `list.distinct()`: compares each element with those kept before it, so
/// it checks the clock as it goes.
fn distinct<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let [list] = args.as_slice() else {
        return Err(no_overload("distinct", &args));
    };
    let Some(items) = list
        .as_iterable()
        .filter(|_| list.get_type().kind() == Kind::List)
    else {
        return Err(no_overload("distinct", &args));
    };
    let mut unique: Vec<&dyn Val> = Vec::new();
    let mut compared = 0usize;
    let mut items = items.iter();
    while let Some(item) = items.next() {
        if !unique.iter().any(|seen| item.equals(*seen)) {
            unique.push(item);
        }
        compared += unique.len();
        if compared >= 1 << 16 {
            compared = 0;
            meter::check().map_err(spent("distinct"))?;
        }
    }
    let out: Vec<Box<dyn Val + 'v>> = unique.into_iter().map(|v| v.clone_as_boxed()).collect();
    Ok(CowVal::owned(CelList::from(out)))
}

fn out_of_range(function: &str, index: i64) -> ExecutionError {
    ExecutionError::function_error(function, format!("index out of range: {index}"))
}

/// The byte offset of code point `index` of `s` (its length at the end).
fn byte_offset(s: &str, index: usize) -> usize {
    s.char_indices().nth(index).map_or(s.len(), |(b, _)| b)
}

/// The string, needle and code-point offset of an `indexOf` or
/// `lastIndexOf` call.
fn search_args<'a>(
    function: &str,
    args: &'a [CowVal<'_, '_>],
) -> Result<(&'a str, &'a str, Option<i64>), ExecutionError> {
    let (s, needle, offset) = match args {
        [s, needle] => (string(&**s), string(&**needle), None),
        [s, needle, offset] => {
            let offset = offset.downcast_ref::<CelInt>().map(|o| *o.inner());
            let Some(offset) = offset else {
                return Err(no_overload(function, args));
            };
            (string(&**s), string(&**needle), Some(offset))
        }
        _ => return Err(no_overload(function, args)),
    };
    match (s, needle) {
        (Some(s), Some(needle)) => Ok((s, needle, offset)),
        _ => Err(no_overload(function, args)),
    }
}

/// `s.indexOf(needle)`, `s.indexOf(needle, offset)` in code points, as CEL
/// has it, in time linear in `s`.
fn index_of<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let (s, needle, offset) = search_args("indexOf", &args)?;
    let len = s.chars().count() as i64;
    let from = match offset {
        None => 0,
        Some(o) if o < 0 => return Err(out_of_range("indexOf", o)),
        Some(o) if needle.is_empty() => return Ok(CowVal::owned(CelInt::from(o.min(len)))),
        Some(o) if o >= len => return Err(out_of_range("indexOf", o)),
        Some(o) => o,
    };
    let start = byte_offset(s, from as usize);
    let found = s[start..]
        .find(needle)
        .map_or(-1, |b| from + s[start..start + b].chars().count() as i64);
    Ok(CowVal::owned(CelInt::from(found)))
}

/// `s.lastIndexOf(needle)`, `s.lastIndexOf(needle, offset)` (the last match
/// starting at or before `offset`) in code points, in time linear in `s`.
fn last_index_of<'b, 'v>(args: Args<'b, 'v>) -> Out<'b, 'v> {
    let (s, needle, offset) = search_args("lastIndexOf", &args)?;
    let len = s.chars().count() as i64;
    let end = match offset {
        None => s.len(),
        Some(o) if o < 0 => return Err(out_of_range("lastIndexOf", o)),
        Some(o) if needle.is_empty() => return Ok(CowVal::owned(CelInt::from(o.min(len)))),
        Some(o) if o >= len => return Err(out_of_range("lastIndexOf", o)),
        // A match starting at or before `o` ends at or before `o` plus
        // the needle's length.
        Some(o) => byte_offset(s, o as usize + needle.chars().count()),
    };
    let found = s[..end]
        .rfind(needle)
        .map_or(-1, |b| s[..b].chars().count() as i64);
    Ok(CowVal::owned(CelInt::from(found)))
}
