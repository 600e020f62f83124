//! docs/ARCHITECTURE.md names the functions and types that do each step of a boot; this
//! checks that every one it names in `module::item` form exists where it says, so the doc
//! cannot drift from the code unnoticed.

use std::path::{Path, PathBuf};

/// The source files of a module path (`dhcp::decide` → src/dhcp/decide.rs): for a module
/// that is a directory, its mod.rs and every file below it (items it re-exports live there).
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
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
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
