//! What a parsed statement file holds: the domain's statement types, which these parsers produce.

pub use dashtam_domain::statement::{
    Statement, StatementAccount, StatementBalance, StatementPosition, StatementTransaction,
};
