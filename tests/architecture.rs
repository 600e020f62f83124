//! docs/ARCHITECTURE.md names the functions and types that do each step of a boot; this
//! checks that every one it names in `module::item` form exists where it says, so the doc
//! cannot drift from the code unnoticed. It also holds the source tree to the one layout
//! that doc's "Tests" section describes.

use std::path::{Path, PathBuf};

/// The source files of a module path (`dhcp::decide` → src/dhcp/decide.rs): for a module
/// with a directory, its own file and every file below it (items it re-exports live there).
fn module_files(root: &Path, modules: &[&str]) -> Vec<PathBuf> {
    let mut base = root.join("src");
    for m in modules {
        base.push(m);
    }
    let mut files = Vec::new();
    let file = base.with_extension("rs");
    if file.is_file() {
        files.push(file);
    }
    if base.is_dir() {
        files.extend(rust_files(&base));
    }
    files
}

/// Whether `text` defines `name` as a function, type, constant, module or enum variant.
fn defines(text: &str, name: &str) -> bool {
    let variant = |end: &str| text.contains(&format!("    {name}{end}"));
    if name.starts_with(|c: char| c.is_ascii_uppercase())
        && [",", "(", " {"].iter().any(|e| variant(e))
    {
        return true;
    }
    ["fn", "struct", "enum", "const", "type", "mod", "trait"]
        .iter()
        .any(|kw| {
            text.match_indices(&format!("{kw} {name}")).any(|(i, m)| {
                let next = text[i + m.len()..].chars().next();
                let prev = text[..i].chars().next_back();
                !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !prev.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
        })
}

#[test]
fn every_module_item_the_architecture_doc_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    for (i, span) in doc.split('`').enumerate() {
        // Odd pieces are inside backticks; keep the `a::b` paths of Rust names only.
        let is_path = i % 2 == 1
            && span.contains("::")
            && span
                .split("::")
                .all(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_'));
        // Other crates' paths (`std::sync`) are not pxed's to check.
        if !is_path
            || ["std", "tokio", "axum", "hyper"]
                .iter()
                .any(|c| span.starts_with(&format!("{c}::")))
        {
            continue;
        }
        let parts: Vec<&str> = span.split("::").collect();
        let modules: Vec<&str> = parts
            .iter()
            .take_while(|p| p.starts_with(|c: char| c.is_ascii_lowercase()))
            .copied()
            .collect();
        let items = &parts[modules.len()..];
        let files = if modules.is_empty() {
            module_files(root, &[])
        } else if items.is_empty() {
            // `a::b` with b a function in module a.
            module_files(root, &modules[..modules.len() - 1])
        } else {
            module_files(root, &modules)
        };
        let wanted: Vec<&str> = if items.is_empty() {
            vec![modules[modules.len() - 1]]
        } else {
            items.to_vec()
        };
        let texts: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        checked += 1;
        for name in wanted {
            if !texts.iter().any(|t| defines(t, name)) {
                missing.push(format!(
                    "`{span}`: no `{name}` in {} file(s) of src/",
                    files.len()
                ));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} names found: is the doc's form still `module::item`?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist:\n{}",
        missing.join("\n")
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// One layout: a module `a::b` is `src/a/b.rs` (never `mod.rs`, never `#[path]`), and its unit
/// tests are `mod tests` at the end of it, or `src/a/b/tests.rs` when they are long.
#[test]
fn the_source_tree_has_one_module_and_test_layout() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for f in rust_files(&src) {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        if name == "mod.rs" {
            wrong.push(format!("{rel}: a module is `name.rs`, not `name/mod.rs`"));
        }
        if name.ends_with("_tests.rs") {
            wrong.push(format!("{rel}: tests of `x.rs` go in `x/tests.rs`"));
        }
        if text.lines().any(|l| l.trim_start().starts_with("#[path")) {
            wrong.push(format!("{rel}: `#[path]` hides where a module is"));
        }
        if name == "tests.rs" {
            let owner = f.parent().unwrap().with_extension("rs");
            let owner_text = std::fs::read_to_string(&owner).unwrap_or_default();
            if !owner_text.contains("#[cfg(test)]\nmod tests;") {
                wrong.push(format!(
                    "{rel}: not declared as `#[cfg(test)] mod tests;` in {}",
                    owner.strip_prefix(&src).unwrap_or(&owner).display()
                ));
            }
        }
        for (i, l) in text.lines().enumerate() {
            let Some(m) = l.trim_start().strip_prefix("mod ") else {
                continue;
            };
            let m = m.trim_end_matches([';', '{', ' ']);
            // `testkit` is the one shared kit, not a module's tests.
            if m.contains("test") && m != "tests" && m != "testkit" {
                wrong.push(format!("{rel}:{}: a test module is called `tests`", i + 1));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The first module name of each row of a markdown table (`| `dhcp::decide` | ...`).
fn table_modules(text: &str, row_prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(row_prefix))
        .filter_map(|l| {
            let l = l.trim_start_matches('[').strip_prefix('`')?;
            let name = &l[..l.find('`')?];
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':')
                .then(|| name.to_string())
        })
        .collect()
}

/// The module map in `src/lib.rs` names every module `lib.rs` declares, in the order of one
/// boot, and ARCHITECTURE.md's module table follows the same order.
#[test]
fn the_module_map_and_the_architecture_table_agree_with_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let map = table_modules(&lib, "//! | ");
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("pub ");
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .filter(|m| m != "testkit")
        .collect();
    for m in &declared {
        assert!(
            map.iter()
                .any(|x| x == m || x.starts_with(&format!("{m}::"))),
            "src/lib.rs declares `{m}`, and its module map does not list it"
        );
    }
    let table = table_modules(&doc, "| ");
    let table: Vec<String> = table.into_iter().filter(|m| m != "module").collect();
    // ARCHITECTURE.md groups `tftp::packet` and `tftp::session` in one row.
    let map_rows: Vec<String> = map
        .iter()
        .filter(|m| *m != "tftp::session")
        .cloned()
        .collect();
    assert_eq!(
        table, map_rows,
        "docs/ARCHITECTURE.md's module table and src/lib.rs's map differ"
    );
}
