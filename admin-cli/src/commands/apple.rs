//! `latchctl apple`: importing the APNs push certificate, showing the
//! Apple status (push topic, expiry, warnings), and renewing a device's
//! identity certificate.

use std::io::Read;
use std::path::Path;

use latchkey_proto::v1;
use serde_json::json;

use super::Context;
use crate::CliError;
use crate::args::{AppleCommand, DepCommand, PushCertCommand};
use crate::error::call;
use crate::render::{self, Table, time};

/// A certificate or key file is a few KiB; anything much larger is the
/// wrong file, refused before it is read into memory.
const MAX_PEM_FILE: u64 = 64 * 1024;

fn read_pem_file(path: &Path) -> Result<String, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(CliError::Usage(format!(
            "{}: larger than {MAX_PEM_FILE} bytes; give the PEM file of the push certificate or its key",
            path.display()
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "{}: not PEM text (a .p12 file must be split into certificate and key first: \
             openssl pkcs12 -in FILE.p12 -clcerts -nokeys -out cert.pem; \
             openssl pkcs12 -in FILE.p12 -nocerts -nodes -out key.pem)",
            path.display()
        ))
    })
}

fn warning_line(w: &v1::ApplePushWarning) -> String {
    use v1::apple_push_warning::Kind;
    match Kind::try_from(w.kind) {
        Ok(Kind::Missing) => "warning: no push certificate; import one with \
                              `latchctl apple push-cert import` before enrolling Apple devices"
            .to_owned(),
        Ok(Kind::ExpiresSoon) => format!(
            "warning: the push certificate for {} expires {}; renew it with the same Apple \
             Account (the topic must stay the same) and import it again",
            w.topic,
            time(w.not_after)
        ),
        Ok(Kind::Expired) => format!(
            "warning: the push certificate for {} expired {}; Apple devices cannot be woken \
             until it is renewed with the same Apple Account and imported again",
            w.topic,
            time(w.not_after)
        ),
        Ok(Kind::Unspecified) | Err(_) => format!("warning: {} (kind {})", w.topic, w.kind),
    }
}

fn warning_kind(w: &v1::ApplePushWarning) -> &'static str {
    use v1::apple_push_warning::Kind;
    match Kind::try_from(w.kind) {
        Ok(Kind::Missing) => "missing",
        Ok(Kind::ExpiresSoon) => "expires-soon",
        Ok(Kind::Expired) => "expired",
        Ok(Kind::Unspecified) | Err(_) => "unknown",
    }
}

pub async fn run(command: AppleCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        AppleCommand::Dep(command) => dep(command, cx).await,
        AppleCommand::PushCert(PushCertCommand::Import { cert, key, force }) => {
            let certificate_pem = read_pem_file(&cert)?;
            let key_pem = read_pem_file(&key)?;
            let import = call(cx.client.import_apple_push_certificate(
                v1::ImportApplePushCertificateRequest {
                    certificate_pem,
                    key_pem,
                    force,
                },
            ))
            .await?;
            let certificate = import
                .certificate
                .ok_or_else(|| CliError::Answer("lacks the imported certificate".into()))?;
            if cx.json {
                return Ok(render::pretty(&json!({
                    "topic": certificate.topic,
                    "common_name": import.common_name,
                    "not_after": render::rfc3339(certificate.not_after),
                    "replaced_topic": (!import.replaced_topic.is_empty()).then_some(&import.replaced_topic),
                    "orphaned_devices": import.orphaned_devices,
                })));
            }
            let mut out = format!(
                "push certificate imported: topic {}, expires {}\n",
                certificate.topic,
                time(certificate.not_after)
            );
            if !import.replaced_topic.is_empty() {
                out.push_str(&format!(
                    "warning: it replaces topic {}; the {} device(s) enrolled under it must \
                     enroll again\n",
                    import.replaced_topic, import.orphaned_devices
                ));
            }
            Ok(out)
        }
        AppleCommand::Profile { user } => {
            let profile = call(cx.client.create_apple_enrollment_profile(
                v1::CreateAppleEnrollmentProfileRequest {
                    user: user.unwrap_or_default(),
                },
            ))
            .await?;
            if cx.json {
                return Ok(render::pretty(&json!({
                    "profile": String::from_utf8_lossy(&profile.profile),
                    "expires_at": render::rfc3339(profile.expires_at),
                    "user": (!profile.user.is_empty()).then_some(&profile.user),
                })));
            }
            String::from_utf8(profile.profile)
                .map_err(|_| CliError::Answer("holds a profile that is not UTF-8 XML".into()))
        }
        AppleCommand::RenewIdentity { id } => {
            let r = call(
                cx.client
                    .renew_apple_identity(v1::RenewAppleIdentityRequest { id }),
            )
            .await?;
            super::device::command_result(
                cx.json,
                "sent a refreshed enrollment profile to renew its identity certificate",
                r,
            )
        }
        AppleCommand::Status => {
            let status = call(cx.client.get_apple_status(v1::GetAppleStatusRequest {})).await?;
            if cx.json {
                return Ok(render::pretty(&json!({
                    "push_certificates": status.push_certificates.iter().enumerate().map(|(i, c)| json!({
                        "topic": c.topic,
                        "not_after": render::rfc3339(c.not_after),
                        "imported_at": render::rfc3339(c.imported_at),
                        "imported_by": c.imported_by,
                        "current": i == 0,
                    })).collect::<Vec<_>>(),
                    "warnings": status.warnings.iter().map(|w| json!({
                        "kind": warning_kind(w),
                        "topic": (!w.topic.is_empty()).then_some(&w.topic),
                        "not_after": render::rfc3339(w.not_after),
                    })).collect::<Vec<_>>(),
                })));
            }
            let mut out = String::new();
            if !status.push_certificates.is_empty() {
                let mut table = Table::new(&["TOPIC", "EXPIRES", "IMPORTED", "BY", "USE"]);
                for (i, c) in status.push_certificates.iter().enumerate() {
                    table.row(vec![
                        c.topic.clone(),
                        time(c.not_after),
                        time(c.imported_at),
                        c.imported_by.clone(),
                        if i == 0 { "current" } else { "older devices" }.to_owned(),
                    ]);
                }
                out.push_str(&table.render());
            }
            for w in &status.warnings {
                out.push_str(&warning_line(w));
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// The largest token file read: Apple's are about 4 KiB.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

fn read_token_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let file_error = |source| CliError::File {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(file_error)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(CliError::Usage(format!(
            "{}: larger than {MAX_TOKEN_FILE} bytes; give the .p7m file Apple Business Manager downloads",
            path.display()
        )));
    }
    Ok(bytes)
}

fn or_never(at: i64) -> String {
    if at == 0 { "never".into() } else { time(at) }
}

fn dep_token_json(t: &v1::AppleDepToken) -> serde_json::Value {
    json!({
        "name": t.name,
        "imported": t.imported,
        "server_name": t.server_name,
        "server_uuid": t.server_uuid,
        "org_name": t.org_name,
        "expires_at": t.imported.then(|| render::rfc3339(t.expires_at)),
        "imported_at": t.imported.then(|| render::rfc3339(t.imported_at)),
        "imported_by": t.imported_by,
        "profile_uuid": (!t.profile_uuid.is_empty()).then_some(&t.profile_uuid),
        "has_cursor": t.has_cursor,
        "cursor_at": (t.cursor_at != 0).then(|| render::rfc3339(t.cursor_at)),
        "last_sync_at": (t.last_sync_at != 0).then(|| render::rfc3339(t.last_sync_at)),
        "last_sync_outcome": t.last_sync_outcome,
        "devices": t.devices,
    })
}

async fn dep(command: DepCommand, cx: &mut Context) -> Result<String, CliError> {
    match command {
        DepCommand::Keypair { name } => {
            let keypair = call(cx.client.create_apple_dep_keypair(
                v1::CreateAppleDepKeypairRequest {
                    name: name.unwrap_or_default(),
                },
            ))
            .await?;
            if cx.json {
                return Ok(render::pretty(&json!({
                    "name": keypair.name,
                    "certificate_pem": keypair.certificate_pem,
                    "created": keypair.created,
                })));
            }
            Ok(keypair.certificate_pem)
        }
        DepCommand::ImportToken { file, name } => {
            let token_file = read_token_file(&file)?;
            let token = call(
                cx.client
                    .import_apple_dep_token(v1::ImportAppleDepTokenRequest {
                        name: name.unwrap_or_default(),
                        token_file,
                    }),
            )
            .await?;
            if cx.json {
                return Ok(render::pretty(&dep_token_json(&token)));
            }
            Ok(format!(
                "ADE token {} imported: server {} of {}, expires {}\n",
                token.name,
                render::or_dash(&token.server_name),
                render::or_dash(&token.org_name),
                time(token.expires_at)
            ))
        }
        DepCommand::Sync { name } => {
            let mut stream = call(cx.client.sync_apple_dep(v1::SyncAppleDepRequest {
                name: name.unwrap_or_default(),
            }))
            .await?;
            loop {
                let Some(progress) = stream.message().await.map_err(crate::error::server_error)?
                else {
                    return Err(CliError::Answer("ended before the sync's outcome".into()));
                };
                if !progress.done {
                    if !cx.json {
                        eprintln!(
                            "{}: {} device(s) fetched so far",
                            progress.name, progress.fetched
                        );
                    }
                    continue;
                }
                if cx.json {
                    return Ok(render::pretty(&json!({
                        "name": progress.name,
                        "fetched": progress.fetched,
                        "added": progress.added,
                        "updated": progress.updated,
                        "retired": progress.retired,
                        "assigned": progress.assigned,
                        "assign_failed": progress.assign_failed,
                        "refetched": progress.refetched,
                    })));
                }
                let mut out = format!(
                    "ADE token {} synced: {} device(s) fetched, {} added, {} updated, {} retired, \
                     {} assigned the profile\n",
                    progress.name,
                    progress.fetched,
                    progress.added,
                    progress.updated,
                    progress.retired,
                    progress.assigned
                );
                if progress.assign_failed > 0 {
                    out.push_str(&format!(
                        "warning: Apple refused the profile for {} device(s)\n",
                        progress.assign_failed
                    ));
                }
                if progress.refetched {
                    out.push_str("the cursor had expired: every device was fetched again\n");
                }
                return Ok(out);
            }
        }
        DepCommand::ResetCursor { name } => {
            let token = call(
                cx.client
                    .reset_apple_dep_cursor(v1::ResetAppleDepCursorRequest {
                        name: name.unwrap_or_default(),
                    }),
            )
            .await?;
            if cx.json {
                return Ok(render::pretty(&dep_token_json(&token)));
            }
            Ok(format!(
                "ADE token {}: cursor reset; the next sync fetches every device again\n",
                token.name
            ))
        }
        DepCommand::Status => {
            let list = call(
                cx.client
                    .list_apple_dep_tokens(v1::ListAppleDepTokensRequest {}),
            )
            .await?;
            if cx.json {
                return Ok(render::pretty(&json!(
                    list.tokens.iter().map(dep_token_json).collect::<Vec<_>>()
                )));
            }
            let mut table = Table::new(&[
                "NAME",
                "SERVER",
                "ORG",
                "EXPIRES",
                "LAST SYNC",
                "DEVICES",
                "OUTCOME",
            ]);
            for t in &list.tokens {
                table.row(vec![
                    t.name.clone(),
                    if t.imported {
                        t.server_name.clone()
                    } else {
                        "(no token imported)".into()
                    },
                    render::or_dash(&t.org_name).to_owned(),
                    if t.imported {
                        time(t.expires_at)
                    } else {
                        "-".into()
                    },
                    or_never(t.last_sync_at),
                    t.devices.to_string(),
                    render::or_dash(&t.last_sync_outcome).to_owned(),
                ]);
            }
            Ok(table.render())
        }
    }
}
