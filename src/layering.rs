//! The crate's parts and what each may import (docs/ARCHITECTURE.md, Parts):
//! read from the `crate::` paths of every source file, so that an import
//! against the layering, or a cycle between parts, fails a test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the modules it may import (separated by spaces).
/// Lower parts never import higher ones; the table itself must have no cycle.
const ALLOWED: &[(&str, &str)] = &[
    ("domain", ""),
    ("connectors", ""),
    ("crypto", ""),
    ("error", ""),
    ("sim", ""),
    ("config", "domain"),
    ("telemetry", "config"),
    ("metrics", "connectors"),
    ("queue", "config metrics"),
    ("db", "config connectors crypto domain queue"),
    ("planning", "connectors db domain"),
    ("auth", "db domain error"),
    (
        "jobs",
        "config connectors crypto db domain metrics planning queue",
    ),
    (
        "api",
        "auth config connectors crypto db domain error jobs metrics planning queue",
    ),
    (
        "app",
        "api auth config connectors crypto db domain error jobs metrics planning queue telemetry",
    ),
    ("demo", "app config sim"),
];

/// The top-level modules each module's files name with `crate::`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            let entries = std::fs::read_dir(&path).expect("read src");
            files.extend(entries.map(|e| e.expect("entry").path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a file");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(module.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let used = out.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            // `migration_portal::crate::` does not occur; `$crate::` (macros) is not ours.
            if text[..at].ends_with('$') {
                continue;
            }
            let name: String = text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                used.insert(name);
            }
        }
        // `use crate::{a, b}` names several at once.
        for (at, _) in text.match_indices("crate::{") {
            let group: String = text[at + "crate::{".len()..]
                .chars()
                .take_while(|c| *c != '}')
                .collect();
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module && name != "self" {
                    used.insert(name);
                }
            }
        }
    }
    out
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.split_whitespace().collect()))
        .collect()
}

/// A cycle among `graph`'s edges, if any, as the path that closes it.
fn cycle<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Option<Vec<&'a str>> {
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut found = path[at..].to_vec();
            found.push(node);
            return Some(found);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_part_imports_only_what_the_layering_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = allowed();
    let found = imports(&src);
    let mut wrong = Vec::new();
    for (module, used) in &found {
        let Some(may) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{module}: a top-level module the layering does not list"
            ));
            continue;
        };
        for name in used {
            if found.contains_key(name) && !may.contains(name.as_str()) {
                wrong.push(format!("{module} imports {name}"));
            }
        }
    }
    assert!(wrong.is_empty(), "against the layering: {wrong:#?}");
    let graph: BTreeMap<&str, BTreeSet<&str>> = found
        .iter()
        .map(|(m, used)| {
            let used = used
                .iter()
                .filter(|u| found.contains_key(u.as_str()))
                .map(String::as_str)
                .collect();
            (m.as_str(), used)
        })
        .collect();
    assert_eq!(cycle(&graph), None, "an import cycle between parts");
}

#[test]
fn the_layering_has_no_cycle_and_a_cycle_is_found() {
    assert_eq!(cycle(&allowed()), None);
    let looped: BTreeMap<&str, BTreeSet<&str>> = [
        ("db", BTreeSet::from(["jobs"])),
        ("jobs", BTreeSet::from(["queue"])),
        ("queue", BTreeSet::from(["db"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(cycle(&looped), Some(vec!["db", "jobs", "queue", "db"]));
}
