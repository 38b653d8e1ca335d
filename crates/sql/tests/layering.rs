//! The crate's top-level modules depend one way: reads the sources, collects
//! which top-level modules each one names (`crate::x` paths, `use crate::{x,
//! …}` groups, and `super::x` in a module's root file, where `super` is the
//! crate root), and fails naming a cycle if the graph has one, or naming an
//! edge that goes up the layering the crate doc states (`src/lib.rs`, the
//! numbered list under "Layering"). Comments and string literals are skipped,
//! so doc links may point anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → (module it names → files that name it).
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The source without comments, string literals and character literals.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let n = b.len();
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        if b[i..].starts_with(b"//") {
            while i < n && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < n {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
                if depth == 0 {
                    break;
                }
            }
            continue;
        }
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        // Raw strings: r"…", r#"…"#, br"…".
        if !ident_before && (b[i] == b'r' || b[i..].starts_with(b"br")) {
            let mut j = i + if b[i] == b'b' { 2 } else { 1 };
            let mut hashes = 0;
            while j < n && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < n && b[j] == b'"' {
                let mut end = vec![b'"'];
                end.extend(std::iter::repeat_n(b'#', hashes));
                j += 1;
                while j < n && !b[j..].starts_with(&end) {
                    j += 1;
                }
                i = (j + end.len()).min(n);
                out.extend_from_slice(b"\"\"");
                continue;
            }
        }
        if b[i] == b'"' {
            i += 1;
            while i < n && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
            continue;
        }
        if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{1F}'); otherwise a lifetime.
            if i + 1 < n && b[i + 1] == b'\\' {
                let mut j = i + 2;
                while j < n && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            let width = src[i + 1..].chars().next().map_or(1, char::len_utf8);
            if i + 1 + width < n && b[i + 1 + width] == b'\'' {
                i += 2 + width;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier starting at `at`, if any.
fn ident_at(s: &[u8], at: usize) -> Option<&str> {
    let mut end = at;
    while end < s.len() && is_ident_byte(s[end]) {
        end += 1;
    }
    (end > at && !s[at].is_ascii_digit())
        .then(|| std::str::from_utf8(&s[at..end]).ok())
        .flatten()
}

/// The first segments of the paths a file names after `prefix` (`crate::`,
/// or `super::` where that is the crate root), including each first-level
/// item of a `prefix{a, b::c}` group.
fn first_segments(s: &str, prefix: &str, out: &mut BTreeSet<String>) {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(pos) = s[from..].find(prefix) {
        let at = from + pos;
        from = at + prefix.len();
        // Whole path segment only (not `foo_crate::`, not `a::crate::`).
        if at > 0 && (is_ident_byte(b[at - 1]) || b[at - 1] == b':') {
            continue;
        }
        let rest = from;
        if b.get(rest) == Some(&b'{') {
            let mut depth = 0;
            let mut expect_item = false;
            let mut k = rest;
            while k < b.len() {
                match b[k] {
                    b'{' => {
                        depth += 1;
                        expect_item = depth == 1;
                        k += 1;
                    }
                    b'}' => {
                        depth -= 1;
                        k += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' => {
                        expect_item = depth == 1;
                        k += 1;
                    }
                    c if c.is_ascii_whitespace() => k += 1,
                    _ => match ident_at(b, k) {
                        Some(id) => {
                            if expect_item {
                                out.insert(id.to_string());
                            }
                            expect_item = false;
                            k += id.len();
                        }
                        None => {
                            expect_item = false;
                            k += 1;
                        }
                    },
                }
            }
        } else if let Some(id) = ident_at(b, rest) {
            out.insert(id.to_string());
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules (files and directories under `src/` but `lib.rs`)
/// and the graph of which names which.
fn module_graph() -> (BTreeSet<String>, Graph) {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut per_file = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.len() == 1 && parts[0] == "lib.rs" {
            continue;
        }
        let top = parts[0].trim_end_matches(".rs").to_string();
        let is_root = parts.len() == 1 || (parts.len() == 2 && parts[1] == "mod.rs");
        modules.insert(top.clone());
        per_file.push((top, is_root, rel.display().to_string(), path.clone()));
    }
    let mut graph = Graph::new();
    for (top, is_root, rel, path) in per_file {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let code = strip(&text);
        let mut named = BTreeSet::new();
        first_segments(&code, "crate::", &mut named);
        if is_root {
            // In a module's root file `super` is the crate root (inside an
            // inline `mod tests` it is the module itself; a name that is not
            // a top-level module is ignored below either way).
            first_segments(&code, "super::", &mut named);
        }
        for m in named {
            if m != top && modules.contains(&m) {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(m)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    (modules, graph)
}

/// A cycle of the graph (its first module repeated at the end), if any.
fn find_cycle(modules: &BTreeSet<String>, graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        m: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flat_map(|e| e.keys()) {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, graph, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in modules {
        if marks.get(m).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(m, graph, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn describe_cycle(cycle: &[String], graph: &Graph) -> String {
    let steps: Vec<String> = cycle
        .windows(2)
        .map(|w| {
            let files = graph
                .get(&w[0])
                .and_then(|e| e.get(&w[1]))
                .map(|f| f.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!("{} -> {} ({files})", w[0], w[1])
        })
        .collect();
    format!("{}:\n  {}", cycle.join(" -> "), steps.join("\n  "))
}

/// The layering the crate doc states: the module names of the numbered list
/// under the "Layering" heading of `src/lib.rs`, lowest first.
fn documented_layering() -> Vec<String> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).expect("reading lib.rs");
    let mut layers = Vec::new();
    let mut in_section = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_section = doc.trim_start_matches('#').trim() == "Layering";
            continue;
        }
        if !in_section {
            continue;
        }
        // "1. [`stack`]: …"
        let Some((number, rest)) = doc.split_once(". ") else {
            continue;
        };
        if number.is_empty() || !number.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let name: String = rest
            .trim_start_matches(['[', '`'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        layers.push(name);
    }
    layers
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let (modules, graph) = module_graph();
    assert!(modules.len() > 5, "found only {modules:?}");
    if let Some(cycle) = find_cycle(&modules, &graph) {
        panic!(
            "import cycle among top-level modules: {}",
            describe_cycle(&cycle, &graph)
        );
    }
}

#[test]
fn modules_only_use_lower_layers() {
    let (modules, graph) = module_graph();
    let layers = documented_layering();
    let listed: BTreeSet<String> = layers.iter().cloned().collect();
    assert_eq!(
        listed, modules,
        "the crate doc's layering must list every top-level module once: {layers:?}"
    );
    assert_eq!(listed.len(), layers.len(), "listed twice: {layers:?}");
    let rank = |m: &str| layers.iter().position(|l| l == m);
    let mut upward = Vec::new();
    for (from, edges) in &graph {
        for (to, files) in edges {
            if rank(to) >= rank(from) {
                upward.push(format!("{from} -> {to} ({files:?})"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "modules naming a module at or above them in the layering {layers:?}:\n{}",
        upward.join("\n")
    );
}

#[test]
fn finds_a_cycle() {
    let mut graph = Graph::new();
    let modules: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    fn add(graph: &mut Graph, from: &str, to: &str) {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default()
            .insert(format!("{from}.rs"));
    }
    add(&mut graph, "a", "b");
    add(&mut graph, "b", "c");
    assert_eq!(find_cycle(&modules, &graph), None);
    add(&mut graph, "c", "a");
    let cycle = find_cycle(&modules, &graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

#[test]
fn reads_paths_not_comments_or_strings() {
    let code = strip(
        "use crate::{a::X, b, c::{d, e}};\n\
         // crate::f\n/// [`crate::g`]\nlet s = \"crate::h\"; let c = '\"'; let r = r#\"crate::i\"#;\n\
         fn k<'a>(x: &'a crate::j::T) {}\n",
    );
    let mut named = BTreeSet::new();
    first_segments(&code, "crate::", &mut named);
    let want: BTreeSet<String> = ["a", "b", "c", "j"].iter().map(|s| s.to_string()).collect();
    assert_eq!(named, want);
}
