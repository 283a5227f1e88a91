//! Loads a Keras model file (`.keras` or `.h5`) the way `load_model()` does and prints
//! `ok` or the error: one process per file, for `tools/fuzz-h5.py`.
//!
//!     cargo run --release --example load_file -- model.h5

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: load_file <model.keras | model.h5>");
        std::process::exit(2);
    };
    let p = std::path::Path::new(&path);
    let result = if path.ends_with(".keras") {
        engine::io::load_keras(p, true).map(|_| ())
    } else {
        engine::io::load_h5(p, true).map(|_| ())
    };
    match result {
        Ok(()) => println!("ok"),
        Err(e) => println!("err: {e}"),
    }
}
