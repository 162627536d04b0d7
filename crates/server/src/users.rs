//! `dashtam user …`: account administration from the shell.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use dashtam_domain::auth::{AuthError, AuthService};
use dashtam_domain::password::Password;
use dashtam_domain::{Email, RequestContext, Role, UserName};

use crate::cli::UserCommand;

/// Runs one user command and returns the line to print.
pub async fn run(auth: &AuthService, command: UserCommand) -> anyhow::Result<String> {
    let context = RequestContext::command_line(command.name());
    match command {
        UserCommand::Create { email, name, admin } => {
            let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
            let name = UserName::parse(&name).map_err(|error| anyhow::anyhow!("--name: {error}"))?;
            let password = read_password()?;
            let role = if admin { Role::Admin } else { Role::User };
            let user = auth.create_verified_user(email, name, &password, role, &context).await.map_err(explain)?;
            Ok(format!("created {} ({}) with id {}", user.email, user.role.as_str(), user.id))
        }
        UserCommand::Promote { email } => {
            let user = auth.change_role(&parse_email(&email)?, Role::Admin, &context).await.map_err(explain)?;
            Ok(format!("{} is now an admin", user.email))
        }
        UserCommand::Demote { email } => {
            let user = auth.change_role(&parse_email(&email)?, Role::User, &context).await.map_err(explain)?;
            Ok(format!("{} is now a user", user.email))
        }
        UserCommand::Disable { email } => {
            let (user, ended) = auth.disable_account(&parse_email(&email)?, &context).await.map_err(explain)?;
            Ok(format!("{} is disabled; {ended} session(s) ended", user.email))
        }
    }
}

fn parse_email(raw: &str) -> anyhow::Result<Email> {
    Email::parse(raw).map_err(|error| anyhow::anyhow!("{raw:?}: {error}"))
}

/// One line from standard input, or a hidden prompt (asked twice) when standard input is a terminal.
fn read_password() -> anyhow::Result<Password> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let second = rpassword::prompt_password("Repeat password: ").context("reading the password")?;
        if first != second {
            bail!("the passwords differ");
        }
        return Ok(Password::new(first));
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(Password::new(password))
}

fn explain(error: AuthError) -> anyhow::Error {
    match error {
        AuthError::WeakPassword(problems) => {
            let reasons: Vec<String> =
                problems.iter().map(|problem| format!("password {}", problem.message())).collect();
            anyhow::anyhow!("weak password: {}", reasons.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}
