//! Prints what a statement file parses to: `cargo run --example dump -- FILE [csv]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else { return };
    let Ok(bytes) = std::fs::read(path) else { return };
    let result = if path.ends_with(".csv") {
        dashtam_import::parse_csv(&bytes, &dashtam_import::CsvMapping::default())
    } else {
        dashtam_import::parse_ofx(&bytes)
    };
    match result {
        Ok(statement) => println!("{statement:#?}"),
        Err(error) => println!("error: {error}"),
    }
}
