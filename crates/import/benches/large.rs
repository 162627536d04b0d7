//! A generator of large OFX statements for the parse benchmark and the timing example.

use std::fmt::Write as _;

/// An OFX 1 (SGML, windows-1252) bank statement with `count` transactions, about 230 bytes each.
pub fn large_ofx(count: usize) -> Vec<u8> {
    let mut text = String::with_capacity(count * 240 + 1024);
    text.push_str(
        "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\nCHARSET:1252\r\n\
         COMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n<OFX>\r\n<SIGNONMSGSRSV1>\r\n<SONRS>\r\n\
         <STATUS>\r\n<CODE>0\r\n<SEVERITY>INFO\r\n</STATUS>\r\n<DTSERVER>20250201\r\n<FI>\r\n<ORG>Bench Bank\r\n\
         <FID>1\r\n</FI>\r\n</SONRS>\r\n</SIGNONMSGSRSV1>\r\n<BANKMSGSRSV1>\r\n<STMTTRNRS>\r\n<TRNUID>1\r\n\
         <STATUS>\r\n<CODE>0\r\n<SEVERITY>INFO\r\n</STATUS>\r\n<STMTRS>\r\n<CURDEF>USD\r\n<BANKACCTFROM>\r\n\
         <BANKID>1\r\n<ACCTID>BENCH-1\r\n<ACCTTYPE>CHECKING\r\n</BANKACCTFROM>\r\n<BANKTRANLIST>\r\n\
         <DTSTART>20200101\r\n<DTEND>20250131\r\n",
    );
    for i in 0..count {
        let day = 1 + i % 28;
        let month = 1 + (i / 28) % 12;
        let cents = (i * 7919) % 100_000;
        let (kind, sign) = if i % 5 == 0 { ("CREDIT", "") } else { ("DEBIT", "-") };
        let _ = write!(
            text,
            "<STMTTRN>\r\n<TRNTYPE>{kind}\r\n<DTPOSTED>2024{month:02}{day:02}120000.000[-5:EST]\r\n\
             <TRNAMT>{sign}{}.{:02}\r\n<FITID>FIT{i:08}\r\n<NAME>Merchant number {}\r\n\
             <MEMO>Card purchase &amp; more {i}\r\n</STMTTRN>\r\n",
            cents / 100,
            cents % 100,
            i % 977,
        );
    }
    text.push_str(
        "</BANKTRANLIST>\r\n<LEDGERBAL>\r\n<BALAMT>1234.56\r\n<DTASOF>20250131\r\n</LEDGERBAL>\r\n</STMTRS>\r\n\
         </STMTTRNRS>\r\n</BANKMSGSRSV1>\r\n</OFX>\r\n",
    );
    text.into_bytes()
}
