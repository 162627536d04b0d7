//! `dashtam tokens rotate`: breach response from the shell, through the same service (and audit) as the API.

use std::time::Duration;

use anyhow::bail;
use dashtam_domain::auth::AuthService;
use dashtam_domain::sessions::{
    GLOBAL_ROTATION_REASON_CHARS, SessionService, USER_ROTATION_REASON_CHARS, reason_length_fits,
};
use dashtam_domain::{Email, RequestContext};

use crate::cli::TokensCommand;

/// Runs one tokens command and returns the line to print.
pub async fn run(sessions: &SessionService, auth: &AuthService, command: TokensCommand) -> anyhow::Result<String> {
    let TokensCommand::Rotate { user, global, reason, grace_seconds } = command;
    let reason = reason.trim();
    let context = RequestContext::command_line("tokens rotate");
    if global {
        if !reason_length_fits(reason, &GLOBAL_ROTATION_REASON_CHARS) {
            let (min, max) = GLOBAL_ROTATION_REASON_CHARS.into_inner();
            bail!("--reason must be {min}–{max} characters for a global rotation");
        }
        let rotation = sessions.rotate_global(None, reason, Duration::from_secs(grace_seconds), &context).await?;
        return Ok(format!(
            "global token version {} -> {}; {} session(s) of {} user(s) retired {}",
            rotation.old_version,
            rotation.new_version,
            rotation.sessions_revoked,
            rotation.users_affected,
            if grace_seconds == 0 { "now".to_owned() } else { format!("in {grace_seconds} s") }
        ));
    }
    let Some(email) = user else { bail!("name --user EMAIL or --global") };
    if !reason_length_fits(reason, &USER_ROTATION_REASON_CHARS) {
        let (min, max) = USER_ROTATION_REASON_CHARS.into_inner();
        bail!("--reason must be {min}–{max} characters");
    }
    let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--user: {error}"))?;
    let user = auth.find_user(&email).await?.ok_or_else(|| anyhow::anyhow!("no account with this email address"))?;
    let rotation = sessions.rotate_user(None, user.id, reason, &context).await?;
    Ok(format!(
        "{}: token version {} -> {}; {} session(s) ended",
        user.email, rotation.old_version, rotation.new_version, rotation.sessions_revoked
    ))
}
