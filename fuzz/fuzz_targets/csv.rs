//! Arbitrary bytes through the CSV importer: recognised headers, and a mapping chosen by the first byte.
#![no_main]

use dashtam_import::{Column, CsvMapping, CsvPreset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let mapping = match selector % 5 {
        0 => CsvMapping::default(),
        1 => CsvMapping::preset(CsvPreset::European),
        2 => CsvMapping::preset(CsvPreset::Broker),
        3 => CsvMapping {
            date: Some(Column::Index(0)),
            debit: Some(Column::Index(1)),
            credit: Some(Column::Index(2)),
            description: Some(Column::Index(3)),
            has_header: Some(false),
            ..CsvMapping::default()
        },
        _ => CsvMapping {
            date: Some(Column::Index(0)),
            amount: Some(Column::Index(1)),
            date_format: Some("%d.%m.%Y".to_owned()),
            decimal_separator: Some(",".to_owned()),
            encoding: Some("latin1".to_owned()),
            has_header: Some(false),
            ..CsvMapping::default()
        },
    };
    let _ = dashtam_import::parse_csv(body, &mapping);
});
