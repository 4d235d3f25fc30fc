//! The layering the module comments promise, checked on the sources of `src/`, found by
//! walking the directory (a new file is checked without being listed here): the module
//! import graph has no cycle; the pure checks (`auth`, `ingest::rate_limit`) never reach
//! back into the state, the routes that call them or the HTTP error; and `domain` never
//! imports HTTP things. It reads source text only and knows nothing of what the modules
//! do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One source file: its module path (`["storage", "copy_text"]`; the crate root is
/// empty) and its text without the unit tests at its end.
struct Source {
    file: String,
    module: Vec<String>,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    walk(&root, &root, &mut found);
    assert!(
        found.len() > 10,
        "no sources found under {}",
        root.display()
    );
    found
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<Source>) {
    let entries = std::fs::read_dir(dir).expect("the source directory is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            walk(root, &path, found);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let file = path
            .strip_prefix(root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        // The binary is its own crate: it reaches the library by name, never `crate::`.
        if file == "main.rs" {
            continue;
        }
        let mut module: Vec<String> = file
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        let text = std::fs::read_to_string(&path).expect("a readable source file");
        found.push(Source {
            file,
            module,
            text: without_unit_tests(&text),
        });
    }
}

/// The text before a trailing `#[cfg(test)] mod …` (its `super::*` means the file
/// itself, not the parent), with comment lines dropped.
fn without_unit_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|pair| {
            pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod ")
        })
        .unwrap_or(lines.len());
    lines[..end]
        .iter()
        .filter(|line| !line.trim_start().starts_with("//"))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a source names: each leaf of its `use` trees, and every inline
/// `crate::…`/`super::…`/`self::…` path, as segments.
fn named_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    // The text outside `use` trees, for the inline paths.
    let mut outside = String::new();
    while let Some(at) = find_use(rest) {
        outside.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find(';').unwrap_or(after.len());
        expand_tree(&[], after[..end].trim(), &mut paths);
        rest = &after[end..];
    }
    outside.push_str(rest);
    let text = outside.as_str();
    for anchor in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(found) = text[from..].find(anchor) {
            let start = from + found;
            let preceded_by_ident = text[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            let end = start
                + text[start..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(text.len() - start);
            if !preceded_by_ident {
                paths.push(segments(&text[start..end]));
            }
            from = end.max(start + anchor.len());
        }
    }
    paths
}

/// Where the next `use` tree starts (just after `use `), if any.
fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find("use ") {
        let at = from + found;
        let before = text[..at].chars().next_back();
        if before.is_none_or(|c| c.is_whitespace() || c == ')' || c == ';' || c == '{') {
            return Some(at + "use ".len());
        }
        from = at + 1;
    }
    None
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "*")
        .map(|s| s.split_whitespace().next().unwrap_or(s).to_owned())
        .collect()
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand_tree(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let Some(open) = tree.find('{') else {
        let mut path = prefix.to_vec();
        path.extend(segments(tree).into_iter().filter(|s| s != "self"));
        out.push(path);
        return;
    };
    let close = tree.rfind('}').unwrap_or(tree.len());
    let mut base = prefix.to_vec();
    base.extend(segments(&tree[..open]));
    let inner = &tree[open + 1..close];
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand_tree(&base, &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand_tree(&base, &inner[start..], out);
    }
}

/// The module a path names, as the longest known module it starts with, resolved from
/// `here`; `None` for other crates.
fn resolve(
    here: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut base: Vec<String>;
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            rest = &path[1..];
        }
        Some("self") => {
            base = here.to_vec();
            rest = &path[1..];
        }
        Some("super") => {
            base = here.to_vec();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child) {
                return None;
            }
            base = here.to_vec();
        }
        None => return None,
    }
    for segment in rest {
        let mut next = base.clone();
        next.push(segment.clone());
        if !modules.contains(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// Module -> the modules it imports. A module and its own ancestors are one tree (a
/// wing's `mod.rs` declares and re-exports its files, which use what it defines), so
/// edges between them are not imports.
fn import_graph(sources: &[Source]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut graph = BTreeMap::new();
    for source in sources {
        let edges: &mut BTreeSet<Vec<String>> = graph.entry(source.module.clone()).or_default();
        for path in named_paths(&source.text) {
            let Some(target) = resolve(&source.module, &path, &modules) else {
                continue;
            };
            let related = target.starts_with(&source.module) || source.module.starts_with(&target);
            if !related {
                edges.insert(target);
            }
        }
    }
    graph
}

/// Every cycle a depth-first walk meets, each as its modules in order.
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|m| name(m)).collect();
            cycle.push(name(node));
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node.clone());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn the_module_import_graph_has_no_cycle() {
    let found = cycles(&import_graph(&sources()));
    let described: Vec<String> = found.iter().map(|cycle| cycle.join(" -> ")).collect();
    assert!(
        described.is_empty(),
        "import cycles:\n{}",
        described.join("\n")
    );
}

#[test]
fn a_cycle_is_found_and_named_through_use_trees_and_inline_paths() {
    let source = |file: &str, module: &[&str], text: &str| Source {
        file: file.to_owned(),
        module: module.iter().map(|s| s.to_string()).collect(),
        text: without_unit_tests(text),
    };
    let sources = |b: &str| {
        vec![
            source("lib.rs", &[], "pub mod a;\npub mod b;"),
            source(
                "a/mod.rs",
                &["a"],
                "mod inner;\nuse crate::b::{self, Thing};",
            ),
            source(
                "a/inner.rs",
                &["a", "inner"],
                "fn f() -> u8 { super::g() + crate::b::H }",
            ),
            source("b.rs", &["b"], b),
        ]
    };
    let acyclic = "pub const H: u8 = 1;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::a::inner::f;\n}";
    assert!(cycles(&import_graph(&sources(acyclic))).is_empty());
    let cyclic = "pub use crate::a::{\n    inner::{F, G},\n};\npub const H: u8 = 1;";
    let found = cycles(&import_graph(&sources(cyclic)));
    assert_eq!(found, [["b", "a::inner", "b"]]);
}

/// Panics naming the file and the line when a source of `files` imports any of
/// `forbidden` (module paths or crate names).
fn assert_never_imports(files: &[&Source], forbidden: &[&str]) {
    assert!(!files.is_empty(), "no files to check");
    for source in files {
        for line in source.text.lines().map(str::trim) {
            let imports = line.starts_with("use ")
                || line.starts_with("pub use ")
                || line.contains("crate::");
            for path in forbidden.iter().filter(|_| imports) {
                assert!(!line.contains(path), "{} uses {path}: {line}", source.file);
            }
        }
    }
}

fn files_under<'a>(sources: &'a [Source], prefix: &str) -> Vec<&'a Source> {
    sources
        .iter()
        .filter(|s| s.file.starts_with(prefix))
        .collect()
}

#[test]
fn the_checks_never_import_the_state_or_the_routes() {
    let sources = sources();
    let http_side = [
        "crate::state",
        "crate::routes",
        "axum::middleware",
        "axum::extract",
    ];
    // The auth wing's HTTP side (the actor extractor, admission, the APIs) never
    // reaches into the state or the routes either; its pure checks (keys, passwords,
    // sessions, throttling, the users table) know no HTTP error or extractor: a refusal
    // becomes an HTTP answer at the caller (`ingest::admission`, `read::auth`).
    let auth = files_under(&sources, "auth/");
    assert_never_imports(&auth, &["crate::state", "crate::routes"]);
    for pure in [
        "auth/mod.rs",
        "auth/api_key.rs",
        "auth/password.rs",
        "auth/session.rs",
        "auth/throttle.rs",
        "auth/users.rs",
    ] {
        let files = files_under(&sources, pure);
        assert_never_imports(&files, &http_side);
        assert_never_imports(&files, &["crate::error"]);
    }
    let rate_limit = files_under(&sources, "ingest/rate_limit.rs");
    assert_never_imports(&rate_limit, &http_side);
    assert_never_imports(&rate_limit, &["crate::error", "crate::auth"]);
}

#[test]
fn the_domain_never_imports_http() {
    let sources = sources();
    let http = ["crate::error", "crate::routes", "crate::state", "axum"];
    assert_never_imports(&files_under(&sources, "domain/"), &http);
}

#[test]
fn the_fingerprint_rule_is_pure() {
    let sources = sources();
    let outside = [
        "crate::error",
        "crate::routes",
        "crate::state",
        "crate::storage",
        "crate::read",
        "axum",
        "sqlx",
    ];
    for file in [
        "errors/fingerprint.rs",
        "errors/frames.rs",
        "errors/template.rs",
    ] {
        assert_never_imports(&files_under(&sources, file), &outside);
    }
}
