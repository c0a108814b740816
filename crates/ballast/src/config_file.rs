//! Reading a config file from disk: the one place the binary turns a path into a
//! validated [`Config`] or a list of precise, printable errors.

use ballast_core::config::{parse_and_validate, Config, MAX_CONFIG_BYTES};
use std::io::Read as _;
use std::path::Path;

/// Reads and validates `path`. Errors are complete lines ready to print, each naming the
/// file and the field at fault.
pub fn load(path: &Path) -> Result<Config, Vec<String>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let mut text = String::new();
    // Read one byte past the limit so an oversized file is reported, not truncated.
    let limit = u64::try_from(MAX_CONFIG_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_string(&mut text)
        .map_err(|e| vec![format!("{shown}: cannot read as UTF-8 text: {e}")])?;
    parse_and_validate(&text).map_err(|errors| errors.iter().map(|e| format!("{shown}: {e}")).collect())
}

/// `ballast check CONFIG`: prints every error, or a one-line summary when the file is
/// valid. Returns whether it is.
pub fn check(path: &Path) -> bool {
    match load(path) {
        Ok(config) => {
            println!(
                "{}: ok ({} balancer(s), {} pool(s))",
                path.display(),
                config.balancers.len(),
                config.pools.len()
            );
            true
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            false
        }
    }
}
