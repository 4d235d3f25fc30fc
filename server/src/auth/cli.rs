//! `log-ingestion-server users add|list|set-role|reset-password|remove`: managing people
//! from a shell (the first admin is made this way). A password is generated and
//! printed once, or read from standard input with `--password-stdin`; never from the
//! command line, where other local users could read it. Changes are audited as `cli`.

use std::io::{BufRead, Read};

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{password, users, Role};

/// Why a change to the last admin is refused.
const LAST_ADMIN: &str = "this is the last admin; make another person admin first";

pub const USAGE: &str = "  users add EMAIL [--role viewer|editor|admin] [--password-stdin]
           add a person (role viewer by default), or bring back a removed one;
           prints a generated password unless one is read from standard input
  users list
  users set-role EMAIL viewer|editor|admin
  users reset-password EMAIL [--password-stdin]
           set a new password (generated and printed, or read from standard input),
           clear any lockout and end the person's sessions
  users remove EMAIL
           end their sessions and refuse them (sign-in and the SSO proxy) until
           they are added again; their saved searches stay, an admin's";

/// One `users` command.
#[derive(Debug, PartialEq, Eq)]
pub enum UsersCommand {
    Add {
        email: String,
        role: Role,
        password_stdin: bool,
    },
    List,
    SetRole {
        email: String,
        role: Role,
    },
    ResetPassword {
        email: String,
        password_stdin: bool,
    },
    Remove {
        email: String,
    },
}

fn role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|error: super::UnknownRole| error.to_string())
}

/// The command after `users`, or why it is not one.
pub fn parse(args: &[&str]) -> Result<UsersCommand, String> {
    match args {
        ["add", email, rest @ ..] => {
            let mut chosen = Role::Viewer;
            let mut password_stdin = false;
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                match *arg {
                    "--role" => chosen = role(rest.next().ok_or("--role needs a value")?)?,
                    "--password-stdin" => password_stdin = true,
                    other => return Err(format!("unexpected argument to users add: {other:?}")),
                }
            }
            Ok(UsersCommand::Add {
                email: users::normalized_email(email)?,
                role: chosen,
                password_stdin,
            })
        }
        ["list"] => Ok(UsersCommand::List),
        ["set-role", email, name] => Ok(UsersCommand::SetRole {
            email: users::normalized_email(email)?,
            role: role(name)?,
        }),
        ["reset-password", email] | ["reset-password", email, "--password-stdin"] => {
            Ok(UsersCommand::ResetPassword {
                email: users::normalized_email(email)?,
                password_stdin: args.len() == 3,
            })
        }
        ["remove", email] => Ok(UsersCommand::Remove {
            email: users::normalized_email(email)?,
        }),
        _ => Err(format!("unknown users command {args:?}")),
    }
}

/// The password to set: the first line of `input`, or a generated one (then `true`).
fn new_password(password_stdin: bool, input: &mut dyn BufRead) -> Result<(String, bool), String> {
    if !password_stdin {
        return Ok((password::generate(), true));
    }
    let mut line = String::new();
    std::io::BufReader::new(input.take(password::MAX_PASSWORD_BYTES as u64 + 2))
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password: {error}"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    password::check_new(&line).map_err(|error| error.to_string())?;
    Ok((line, false))
}

async fn audit(
    connection: &mut PgConnection,
    action: &str,
    email: &str,
    details: serde_json::Value,
) -> Result<(), String> {
    sqlx::query("INSERT INTO audit_log (actor, action, target, details) VALUES ('cli', $1, $2, $3)")
        .bind(action)
        .bind(format!("user:{email}"))
        .bind(details)
        .execute(connection)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

fn failed(error: sqlx::Error) -> String {
    format!("{error} (has `log-ingestion-server migrate` run?)")
}

/// Runs `command`; answers what to print.
pub async fn run(
    command: UsersCommand,
    pool: &PgPool,
    input: &mut dyn BufRead,
) -> Result<String, String> {
    let mut tx = pool.begin().await.map_err(failed)?;
    let output = match command {
        UsersCommand::List => {
            let mut text = String::new();
            for user in users::list(pool).await.map_err(failed)? {
                let locked = user
                    .locked_until
                    .filter(|until| *until > chrono::Utc::now())
                    .map(|until| format!(" locked until {until}"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{}\t{}\t{}{locked}\n",
                    user.email, user.role.0, user.source
                ));
            }
            text
        }
        UsersCommand::Add {
            email,
            role,
            password_stdin,
        } => {
            let (password, generated) = new_password(password_stdin, input)?;
            let hash = password::hash(password.clone())
                .await
                .map_err(|error| error.to_string())?;
            let (_, was_removed_at) = users::add_or_restore(&mut tx, &email, role, &hash)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("{email} already exists"))?;
            let details = users::added_details(role, was_removed_at);
            audit(&mut tx, "user.add", &email, details).await?;
            if generated {
                format!("added {email} ({role}) with password: {password}\n")
            } else {
                format!("added {email} ({role})\n")
            }
        }
        UsersCommand::SetRole { email, role } => {
            let user = users::find(&mut tx, &email)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("no user {email}"))?;
            if users::would_leave_no_admin(&mut tx, user.id, Some(role))
                .await
                .map_err(failed)?
            {
                return Err(LAST_ADMIN.into());
            }
            users::set_role(&mut tx, user.id, role)
                .await
                .map_err(failed)?;
            audit(
                &mut tx,
                "user.set_role",
                &email,
                json!({"from": user.role, "to": role}),
            )
            .await?;
            format!("{email} is now {role}\n")
        }
        UsersCommand::ResetPassword {
            email,
            password_stdin,
        } => {
            let user = users::find(&mut tx, &email)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("no user {email}"))?;
            let (password, generated) = new_password(password_stdin, input)?;
            let hash = password::hash(password.clone())
                .await
                .map_err(|error| error.to_string())?;
            users::set_password(&mut tx, user.id, &hash)
                .await
                .map_err(failed)?;
            audit(&mut tx, "user.reset_password", &email, json!({})).await?;
            if generated {
                format!("new password for {email}: {password}\n")
            } else {
                format!("password of {email} set\n")
            }
        }
        UsersCommand::Remove { email } => {
            let user = users::find(&mut tx, &email)
                .await
                .map_err(failed)?
                .ok_or_else(|| format!("no user {email}"))?;
            if users::would_leave_no_admin(&mut tx, user.id, None)
                .await
                .map_err(failed)?
            {
                return Err(LAST_ADMIN.into());
            }
            users::remove(&mut tx, user.id).await.map_err(failed)?;
            audit(&mut tx, "user.remove", &email, json!({"role": user.role})).await?;
            format!("removed {email}\n")
        }
    };
    tx.commit().await.map_err(failed)?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_and_passwords_never_come_from_arguments() {
        assert_eq!(
            parse(&["add", "Ann@Example.com", "--role", "admin"]),
            Ok(UsersCommand::Add {
                email: "ann@example.com".into(),
                role: Role::Admin,
                password_stdin: false
            })
        );
        assert_eq!(parse(&["list"]), Ok(UsersCommand::List));
        assert!(parse(&["add", "ann@example.com", "--password", "hunter2hunter2"]).is_err());
        assert!(parse(&["set-role", "ann@example.com", "root"]).is_err());
        assert!(parse(&["reset-password", "ann@example.com", "secret"]).is_err());
    }

    #[test]
    fn a_password_from_stdin_is_its_first_line_and_bounded() {
        let mut input = std::io::Cursor::new("a long enough password\nrest");
        assert_eq!(
            new_password(true, &mut input).unwrap(),
            ("a long enough password".to_owned(), false)
        );
        let mut long = std::io::Cursor::new("x".repeat(10_000));
        assert!(new_password(true, &mut long).is_err());
    }
}
