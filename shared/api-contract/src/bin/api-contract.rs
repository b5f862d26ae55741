//! Writes the contracts: `api-contract DIR` writes `DIR/openapi.json` and `DIR/asyncapi.json`
//! (`make contract` writes them to `.local/contract/`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: api-contract DIR");
        return ExitCode::from(2);
    };
    let write = |name: &str, doc: serde_json::Value| -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(name), text + "\n")
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| write("openapi.json", api_contract::openapi()))
        .and_then(|()| write("asyncapi.json", api_contract::asyncapi()));
    match written {
        Ok(()) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("api-contract: {e}");
            ExitCode::FAILURE
        }
    }
}
