//! Arbitrary bytes through format detection and the OFX header, decoder, tokenizer and converter.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dashtam_import::detect(data, None);
    if let Ok(statement) = dashtam_import::parse_ofx(data) {
        // Every transaction names a line inside the file.
        let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
        for account in &statement.accounts {
            for transaction in &account.transactions {
                assert!(transaction.line >= 1 && transaction.line <= lines);
            }
        }
    }
});
