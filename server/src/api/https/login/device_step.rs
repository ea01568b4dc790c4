//! The device step of a sign-in: choosing the device, the waiting page's
//! long poll and the code typed from the device, the one-time link the
//! agent opens (`core::sso::proof`), and the mobile path's certificate.
//!
//! What a device's answer must satisfy is the core's (`core::sso`); the
//! waiting itself is `api::long_poll`'s, shared with the agent's gRPC
//! call. The pages' HTML is in `pages/device_step.rs`, the page's script
//! in `assets.rs`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use tracing::{debug, warn};

use super::{login_url, render_step};
use crate::api::https::client::{Client, current_session};
use crate::api::https::csrf::{SessionForm, csrf_protected};
use crate::api::https::errors::{expired_page, unavailable};
use crate::api::https::frame::{page, page_headers, see_other};
use crate::api::https::i18n::{self as t, Text};
use crate::api::https::language::language;
use crate::api::https::{PeerCertificate, Web, pages};
use crate::core::CoreError;
use crate::core::sso::{DeviceCodeOutcome, RedeemOutcome, Step};
use crate::domain::ids::DeviceAuthTxnId;
use crate::domain::sign_in::SsoSession;
use crate::domain::sign_in::TxnOutcome;

/// How long one `/login/wait` request waits before answering "pending".
const WAIT: Duration = Duration::from_secs(25);

csrf_protected!(DeviceForm);

#[derive(Deserialize)]
pub struct DeviceForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    device: Option<String>,
}

/// `POST /login/device`: "use this device", or "try again".
pub async fn choose_device(
    State(web): State<Web>,
    SessionForm {
        session,
        secret,
        lang,
        form,
        ..
    }: SessionForm<DeviceForm>,
) -> Response {
    match web
        .core
        .sign_in
        .choose_device(&session, &form.req, form.device.as_deref(), Utc::now())
        .await
    {
        Ok(Step::DeviceAuth { .. }) => see_other(&login_url(&form.req), &[]),
        Ok(step) => {
            render_step(
                &web,
                lang,
                &session,
                &secret,
                &form.req,
                step,
                None,
                StatusCode::OK,
            )
            .await
        }
        Err(e) => unavailable(lang, &e),
    }
}

csrf_protected!(DeviceCodeForm);

#[derive(Deserialize)]
pub struct DeviceCodeForm {
    #[serde(default)]
    req: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `POST /login/device/code`: the code the device showed, typed on the
/// waiting page of the session that started the sign-in.
pub async fn submit_device_code(
    State(web): State<Web>,
    SessionForm {
        session,
        secret,
        lang,
        form,
        ..
    }: SessionForm<DeviceCodeForm>,
) -> Response {
    let now = Utc::now();
    let outcome = match web
        .core
        .sign_in
        .submit_device_code(&session, &form.req, &form.code, now)
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return unavailable(lang, &e),
    };
    let (error, status) = match outcome {
        DeviceCodeOutcome::Delivered | DeviceCodeOutcome::TooMany => {
            return see_other(&login_url(&form.req), &[]);
        }
        DeviceCodeOutcome::Expired => return expired_page(lang, &login_url(&form.req)),
        DeviceCodeOutcome::Rejected { left } => (
            format!("{} {left}", t::DEVICE_CODE_WRONG.get(lang)),
            StatusCode::UNAUTHORIZED,
        ),
        DeviceCodeOutcome::NotAnswered => (
            t::DEVICE_CODE_NOT_YET.get(lang).to_owned(),
            StatusCode::CONFLICT,
        ),
    };
    let step = match web.core.sign_in.next_step(&session, &form.req, now).await {
        Ok(step) => step,
        Err(e) => return unavailable(lang, &e),
    };
    render_step(
        &web,
        lang,
        &session,
        &secret,
        &form.req,
        step,
        Some(&error),
        status,
    )
    .await
}

#[derive(Deserialize)]
pub struct RedeemQuery {
    txn: Option<String>,
    proof: Option<String>,
}

/// `GET /login/device/redeem?txn=…&proof=…`: the one-time link the agent
/// opened in the user's default browser. In the browser whose session
/// started the sign-in, the sign-in goes on; in any other, nothing
/// completes and the page says whose sign-in it was and what to do.
pub async fn redeem_device_link(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<RedeemQuery>,
) -> Response {
    let lang = language(&headers, None);
    let now = Utc::now();
    let session = match current_session(&web, &headers, &client).await {
        Ok(s) => s.map(|(session, _)| session),
        Err(e) => return unavailable(lang, &e),
    };
    // A link naming no id this server could have made is like a spent one.
    let Some(txn) = query.txn.as_deref().and_then(DeviceAuthTxnId::parse) else {
        return expired_page(lang, "/");
    };
    let outcome = web
        .core
        .sign_in
        .redeem_link(
            session.as_ref(),
            &txn,
            query.proof.as_deref().unwrap_or(""),
            &client,
            now,
        )
        .await;
    match outcome {
        Ok(RedeemOutcome::Delivered { request_id }) => page(
            lang,
            StatusCode::OK,
            &t::PROOF_DELIVERED_TITLE,
            pages::proof_delivered(lang, request_id.as_str(), txn.as_str()),
            &login_url(request_id.as_str()),
        )
        .into_response(),
        Ok(RedeemOutcome::OtherBrowser(context)) => page(
            lang,
            StatusCode::FORBIDDEN,
            &t::OTHER_BROWSER_TITLE,
            pages::other_browser(lang, &context, web.core.sign_in.support_contact()),
            "/",
        )
        .into_response(),
        Ok(RedeemOutcome::Invalid) => expired_page(lang, "/"),
        Err(e) => unavailable(lang, &e),
    }
}

#[derive(Deserialize)]
pub struct WaitQuery {
    txn: Option<String>,
}

/// `GET /login/wait?txn=…`: answers when the device has answered, or after
/// a while with "pending" (the page asks again).
pub async fn wait(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<WaitQuery>,
) -> Response {
    let status = match current_session(&web, &headers, &client).await {
        // A transaction id of another shape names no transaction.
        Ok(Some((session, _))) => match query.txn.as_deref().and_then(DeviceAuthTxnId::parse) {
            None => "unknown",
            Some(txn) => match wait_for_answer(&web, &session, &txn).await {
                Ok(Some(TxnOutcome::Pending)) => "pending",
                Ok(Some(TxnOutcome::Confirmed)) => "confirmed",
                Ok(Some(TxnOutcome::Failed(_))) => "failed",
                Ok(None) => "unknown",
                Err(e) => {
                    warn!(error = %e, "device-auth wait failed");
                    return (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response();
                }
            },
        },
        Ok(None) => "unknown",
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n").into_response(),
    };
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"status":"{status}"}}"#),
    )
        .into_response();
    page_headers(&mut response);
    response
}

/// Waits until the transaction is answered or expires, or [`WAIT`] passes.
async fn wait_for_answer(
    web: &Web,
    session: &SsoSession,
    txn_id: &DeviceAuthTxnId,
) -> Result<Option<TxnOutcome>, CoreError> {
    crate::api::long_poll::until_moved(&web.core, txn_id, WAIT, || async {
        let state = web
            .core
            .sign_in
            .device_auth_state(session, txn_id, Utc::now())
            .await?;
        let done = !matches!(state, Some(TxnOutcome::Pending));
        Ok((state, done))
    })
    .await
}

/// `GET /device-auth?txn=…` on the device listener: a phone or tablet
/// answers with the certificate its MDM profile installed, then goes back
/// to the sign-in on the main listener.
pub async fn device_certificate(
    State(web): State<Web>,
    axum::Extension(certificate): axum::Extension<PeerCertificate>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<WaitQuery>,
) -> Response {
    let lang = language(&headers, None);
    let now = Utc::now();
    let here = "/device-auth";
    let session = match current_session(&web, &headers, &client).await {
        Ok(Some((session, _))) => session,
        Ok(None) => return expired_page(lang, here),
        Err(e) => return unavailable(lang, &e),
    };
    let refused = |text: &'static Text| {
        page(
            lang,
            StatusCode::FORBIDDEN,
            &t::NO_DEVICE_CERTIFICATE_TITLE,
            pages::no_device_certificate(lang, text),
            here,
        )
        .into_response()
    };
    let Some(leaf) = certificate.0 else {
        return refused(&t::NO_DEVICE_CERTIFICATE);
    };
    // An id of another shape names no transaction; the certificate is
    // still checked, as for any other unknown one.
    let txn = query.txn.as_deref().and_then(DeviceAuthTxnId::parse);
    let ip = client.ip.clone();
    match web
        .core
        .sign_in
        .answer_with_certificate(&session, &leaf, txn.as_ref(), &ip, now)
        .await
    {
        // Either way the sign-in page shows the outcome.
        Ok((_, request_id)) => see_other(
            &format!(
                "{}{}",
                web.core.sign_in.issuer(),
                login_url(request_id.as_str())
            ),
            &[],
        ),
        Err(CoreError::DeviceAuth(e)) => {
            debug!(error = %e, "device certificate refused at sign-in");
            refused(&t::DEVICE_CERTIFICATE_REFUSED)
        }
        Err(CoreError::Internal(e)) => unavailable(lang, &CoreError::Internal(e)),
        Err(_) => expired_page(lang, here),
    }
}
