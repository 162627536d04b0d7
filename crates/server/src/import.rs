//! `dashtam import FILE --user E`: the same import as `POST /api/v1/imports`, from the shell.

use std::path::Path;

use anyhow::{Context, bail};
use dashtam_domain::auth::AuthService;
use dashtam_domain::imports::{ImportFormat, ImportRequest, ImportService};
use dashtam_domain::ledger::AccountId;
use dashtam_domain::{Email, RequestContext};
use dashtam_import::{CsvMapping, Format};

use crate::cli::ImportArgs;

/// Runs one import and returns the summary line to print.
pub async fn run(
    imports: &ImportService,
    auth: &AuthService,
    args: ImportArgs,
    max_bytes: usize,
) -> anyhow::Result<String> {
    let context = RequestContext::command_line("import");
    let email = Email::parse(&args.user).map_err(|error| anyhow::anyhow!("--user: {error}"))?;
    let user = auth.find_user(&email).await?.ok_or_else(|| anyhow::anyhow!("no account with this email address"))?;
    let bytes = read_bounded(&args.file, max_bytes)?;
    let file_name =
        args.file.file_name().map_or_else(|| "statement".to_owned(), |name| name.to_string_lossy().into_owned());
    let format = match args.format.as_deref() {
        Some(text) => Some(Format::parse(text).ok_or_else(|| anyhow::anyhow!("--format must be ofx, qfx or csv"))?),
        None => None,
    };
    let mapping: Option<CsvMapping> = match args.csv_mapping.as_deref() {
        Some(json) => Some(serde_json::from_str(json).context("--csv-mapping")?),
        None => None,
    };
    let parsed = dashtam_import::parse(&bytes, Some(&file_name), format, mapping.as_ref());
    let (format, statement) = match parsed {
        Ok(parsed) => parsed,
        Err(failure) => {
            imports.record_failure(user.id, &file_name, &failure.to_string(), &context).await?;
            bail!("{file_name}: {failure}; nothing was imported");
        }
    };
    let format = match format {
        Format::Ofx => ImportFormat::Ofx,
        Format::Qfx => ImportFormat::Qfx,
        Format::Csv => ImportFormat::Csv,
    };
    let request = ImportRequest {
        user_id: user.id,
        file_name: file_name.clone(),
        format,
        account_id: args.account_id.map(AccountId::from_uuid),
        statement,
    };
    let record = imports.import(request, &context).await.map_err(|error| anyhow::anyhow!("{file_name}: {error}"))?;
    let mut summary = format!(
        "{file_name} ({}): {} account(s) created, {} updated; {} transaction(s) created, {} duplicate; {} holding(s) created, {} updated",
        record.format.as_str(),
        record.accounts_created,
        record.accounts_updated,
        record.transactions_created,
        record.transactions_duplicate,
        record.holdings_created,
        record.holdings_updated
    );
    for warning in &record.warnings {
        summary.push_str(&format!("\nwarning: {warning}"));
    }
    Ok(summary)
}

/// The file's bytes, refusing one larger than the configured import limit without reading it all.
fn read_bounded(path: &Path, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if usize::try_from(size).map_or(true, |size| size > max_bytes) {
        bail!(
            "{} is {size} bytes; statement files may be at most {max_bytes} (DASHTAM_IMPORTS__MAX_FILE_SIZE)",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
