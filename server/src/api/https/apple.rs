//! Apple devices over HTTPS: SCEP (RFC 8894 §4: GetCACaps, GetCACert and
//! PKIOperation over GET and POST), the MDM check-in URL and the command
//! channel (Apple, "Check-in" and "Sending MDM commands to a device"), and
//! the enrollment profile Setup Assistant fetches for a device listed by
//! Automated Device Enrollment (Apple, "Device Assignment": POST of the
//! CMS-signed MachineInfo, or GET with `x-apple-aspen-deviceinfo`), and,
//! with `[apple] dep_sign_in`, the sign-in Setup Assistant's web view goes
//! through first and the callback it comes back to
//! (`/apple/dep/callback`).
//!
//! Every answer is in Apple's terms and none is 401, which makes a device
//! unenroll: a device Latchkey no longer manages hears 403
//! `{"code":"com.apple.unrecognized.device"}` (iOS 17 and macOS 14 then
//! unenroll on purpose), a request that does not verify or fit its device
//! 400, and a failure of the server's own 500. SCEP refusals are CertReps
//! with pkiStatus FAILURE whenever the request names its transaction.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use tracing::{info, warn};

use super::{PeerCertificate, Web};
use crate::api::apple::{checkin as checkin_wire, commands as command_wire};
use crate::core::CoreError;
use crate::core::apple::{
    AppleDevice, AppleProof, AppleRefusal, CheckInAnswer, DepSignInRefusal, ScepAnswer,
};

/// Longest body an Apple device sends (a command report with a long
/// profile list or installed-application list stays well below).
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;

const PKI_MESSAGE: &str = "application/x-pki-message";

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

/// The one mapping from a refusal to what an Apple device hears.
fn refusal(e: AppleRefusal) -> Response {
    match e {
        AppleRefusal::Unrecognized(why) => {
            info!(reason = %why, "Apple device not recognized");
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"code":"com.apple.unrecognized.device"}"#,
            )
                .into_response()
        }
        AppleRefusal::Unidentified(why) | AppleRefusal::Mismatch(why) => {
            plain(StatusCode::BAD_REQUEST, why)
        }
        AppleRefusal::Operation(e) => core_error(e),
    }
}

fn core_error(e: CoreError) -> Response {
    match e {
        CoreError::Internal(cause) => {
            warn!(error = %cause, "Apple request failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        CoreError::NotFound(what) => plain(StatusCode::BAD_REQUEST, format!("{what} not found")),
        other => plain(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ScepQuery {
    operation: Option<String>,
    message: Option<String>,
}

/// `GET /apple/scep?operation=…`.
pub(super) async fn scep_get(State(web): State<Web>, Query(query): Query<ScepQuery>) -> Response {
    match query.operation.as_deref() {
        Some("GetCACaps") => plain(StatusCode::OK, latchkey_certs::scep::ca_caps()),
        Some("GetCACert") => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-x509-ca-ra-cert")],
            web.core.apple.scep_ca_certificates(),
        )
            .into_response(),
        Some("PKIOperation") => {
            // RFC 8894 §4.3: over GET the message is base64 in `message`
            // (URL-encoded, which the query decoding undid).
            let Some(message) = query.message else {
                return plain(StatusCode::BAD_REQUEST, "PKIOperation without a message");
            };
            // Base64 has no spaces: a space is a `+` a client did not
            // escape (the query decoding turned it into one); line breaks
            // some clients add are dropped.
            let cleaned: String = message
                .chars()
                .map(|c| if c == ' ' { '+' } else { c })
                .filter(|c| !c.is_whitespace())
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) {
                Ok(der) => pki_operation(&web, &der).await,
                Err(_) => plain(StatusCode::BAD_REQUEST, "the message is not base64"),
            }
        }
        Some(other) => plain(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown SCEP operation {:?}",
                crate::api::apple::wire::quote(other)
            ),
        ),
        None => plain(StatusCode::BAD_REQUEST, "no SCEP operation"),
    }
}

/// `POST /apple/scep?operation=PKIOperation`.
pub(super) async fn scep_post(
    State(web): State<Web>,
    Query(query): Query<ScepQuery>,
    body: Bytes,
) -> Response {
    match query.operation.as_deref() {
        Some("PKIOperation") => pki_operation(&web, &body).await,
        _ => plain(StatusCode::BAD_REQUEST, "only PKIOperation is posted"),
    }
}

async fn pki_operation(web: &Web, message: &[u8]) -> Response {
    match web.core.apple.scep_pki_operation(message, Utc::now()).await {
        Ok(ScepAnswer::CertRep(der)) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, PKI_MESSAGE)], der).into_response()
        }
        Ok(ScepAnswer::Unreadable(why)) => plain(StatusCode::BAD_REQUEST, why),
        Err(e) => core_error(e),
    }
}

/// Who sent an MDM request: the `Mdm-Signature` over the body, else the
/// TLS client certificate.
async fn identify(
    web: &Web,
    headers: &HeaderMap,
    peer: Option<&PeerCertificate>,
    body: &[u8],
) -> Result<AppleDevice, Response> {
    let now = Utc::now();
    // One signature speaks for a request: with two, which one a proxy in
    // front checked and which one this server would read could differ.
    let mut signatures = headers.get_all("mdm-signature").iter();
    let first = signatures.next();
    if signatures.next().is_some() {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "more than one Mdm-Signature header",
        ));
    }
    let signature = match first.map(HeaderValue::to_str) {
        Some(Ok(text)) => {
            let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(cleaned.as_bytes())
                    .map_err(|_| plain(StatusCode::BAD_REQUEST, "Mdm-Signature is not base64"))?,
            )
        }
        Some(Err(_)) => {
            return Err(plain(
                StatusCode::BAD_REQUEST,
                "Mdm-Signature is not base64",
            ));
        }
        None => None,
    };
    let proof = match (&signature, peer.and_then(|p| p.0.as_deref())) {
        (Some(signature), _) => AppleProof::Signature(signature),
        (None, Some(certificate)) => AppleProof::TlsCertificate(certificate),
        (None, None) => {
            return Err(plain(
                StatusCode::BAD_REQUEST,
                "no device identity: sign the request (Mdm-Signature) or present the identity \
                 certificate",
            ));
        }
    };
    web.core
        .apple
        .identify(proof, body, now)
        .await
        .map_err(refusal)
}

fn too_large(body: &[u8]) -> Option<Response> {
    (body.len() > MAX_BODY).then(|| {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        )
    })
}

/// `PUT /apple/mdm/checkin`.
pub(super) async fn checkin(
    State(web): State<Web>,
    peer: Option<axum::Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(answer) = too_large(&body) {
        return answer;
    }
    let device = match identify(&web, &headers, peer.as_deref(), &body).await {
        Ok(device) => device,
        Err(answer) => return answer,
    };
    let message = match checkin_wire::decode_checkin(&body) {
        Ok(message) => message,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match web.core.apple.check_in(&device, message, Utc::now()).await {
        Ok(CheckInAnswer::Done) => StatusCode::OK.into_response(),
        Ok(CheckInAnswer::BootstrapToken(token)) => {
            match checkin_wire::encode_get_bootstrap_token_response(token.as_ref()) {
                Ok(body) => xml(body),
                Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        Ok(CheckInAnswer::Gone) => plain(StatusCode::GONE, "user channels are not managed"),
        Ok(CheckInAnswer::Unsupported(what)) => plain(
            StatusCode::BAD_REQUEST,
            format!("{what} is not supported by this server"),
        ),
        Err(e) => refusal(e),
    }
}

fn xml(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `PUT /apple/mdm/connect`: a report, answered with the next command or
/// an empty body.
pub(super) async fn connect(
    State(web): State<Web>,
    peer: Option<axum::Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(answer) = too_large(&body) {
        return answer;
    }
    let device = match identify(&web, &headers, peer.as_deref(), &body).await {
        Ok(device) => device,
        Err(answer) => return answer,
    };
    let report = match crate::api::apple::report::decode_report(&body) {
        Ok(report) => report,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match web
        .core
        .apple
        .command_report(&device, report, Utc::now())
        .await
    {
        Ok(Some((id, command))) => match command_wire::encode_command(&id, &command) {
            Ok(body) => xml(body),
            Err(e) => {
                // Taken again at every check-in, it would stand before
                // every later command: it is closed as failed, and the
                // device's next report gets the next one.
                let why = e.to_string();
                if let Err(failed) = web
                    .core
                    .apple
                    .command_unsendable(&device, &id, &why, Utc::now())
                    .await
                {
                    warn!(command = %id, error = %failed, "an unsendable command stays open");
                }
                plain(StatusCode::INTERNAL_SERVER_ERROR, why)
            }
        },
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => refusal(e),
    }
}

/// `GET /apple/enroll`: the enrollment profile for the signed-in user's
/// own device, signed, as Settings installs it. The user must have passed a
/// second factor in this session, and every factor within the step-up
/// window (as for changing a protection on the account page): a device
/// enrolled here is bound to the user and then answers device-bound
/// sign-ins, so neither a phished password nor a session cookie stolen
/// hours later may get one.
pub(super) async fn enrollment_page(
    State(web): State<Web>,
    super::client::Client(client): super::client::Client,
    headers: HeaderMap,
) -> Response {
    use super::frame::page;
    use super::i18n as t;
    let lang = super::language::language(&headers, None);
    let here = "/apple/enroll";
    let refuse = |status: StatusCode, text: &'static super::i18n::Text| {
        page(
            lang,
            status,
            &t::ENROLL_TITLE,
            format!(r#"<p class="error" role="alert">{}</p>"#, text.get(lang)),
            here,
        )
        .into_response()
    };
    if !web.core.apple.settings().enrollment_page {
        return refuse(StatusCode::NOT_FOUND, &t::ENROLL_OFF);
    }
    let (session, _, user) = match super::account::signed_in(&web, &headers, &client).await {
        Ok(signed_in) => signed_in,
        Err(_) => return refuse(StatusCode::FORBIDDEN, &t::ENROLL_SIGN_IN_FIRST),
    };
    if session.second_factor.is_none() {
        return refuse(StatusCode::FORBIDDEN, &t::ENROLL_NEEDS_SECOND_FACTOR);
    }
    match web
        .core
        .sign_in
        .stepped_up(&session, &user, Utc::now())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return page(
                lang,
                StatusCode::FORBIDDEN,
                &t::ENROLL_TITLE,
                format!(
                    r#"<p class="error" role="alert">{}</p><p><a href="/account">{}</a></p>"#,
                    t::ENROLL_CONFIRM_FIRST.get(lang),
                    t::ACCOUNT_TITLE.get(lang)
                ),
                here,
            )
            .into_response();
        }
        Err(e) => return super::errors::unavailable(lang, &e),
    }
    let apple = &web.core.apple;
    let signed = apple
        .new_enrollment_for_user(&user.email, Utc::now())
        .await
        .and_then(|enrollment| apple.enrollment_profile(&enrollment))
        .and_then(|profile| apple.sign_profile(&profile));
    match signed {
        Ok(der) => signed_profile(der, true),
        Err(e) => super::errors::unavailable(lang, &e),
    }
}

const ASPEN_CONFIG: &str = "application/x-apple-aspen-config";

/// A signed enrollment profile as Settings and Setup Assistant install it.
fn signed_profile(der: Vec<u8>, attachment: bool) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ASPEN_CONFIG),
            (header::CACHE_CONTROL, "no-store"),
        ],
        der,
    )
        .into_response();
    if attachment {
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"enroll.mobileconfig\""),
        );
    }
    response
}

/// `POST /apple/dep/enroll`: Setup Assistant sends its MachineInfo
/// (CMS-signed plist) in the body.
pub(super) async fn dep_enroll_post(State(web): State<Web>, body: Bytes) -> Response {
    dep_enroll(&web, &body).await
}

/// `GET /apple/dep/enroll`: the web view of `configuration_web_url` sends
/// the same MachineInfo, base64, in `x-apple-aspen-deviceinfo`. With
/// `[apple] dep_sign_in` on, the web view is sent to sign in first.
pub(super) async fn dep_enroll_get(State(web): State<Web>, headers: HeaderMap) -> Response {
    let Some(value) = headers.get("x-apple-aspen-deviceinfo") else {
        return plain(
            StatusCode::FORBIDDEN,
            "this enrollment is for devices in Setup Assistant, which send their MachineInfo",
        );
    };
    let cleaned: String = value
        .to_str()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "x-apple-aspen-deviceinfo is not base64",
        );
    };
    if web.core.apple.settings().dep_sign_in {
        return dep_sign_in_start(&web, &headers, &der).await;
    }
    dep_enroll(&web, &der).await
}

/// The serial number MachineInfo names, or the answer to a MachineInfo
/// that cannot be read. MachineInfo is not checked against Apple's CA: it
/// proves nothing (a replayed one reads the same), so it only picks which
/// listed record an enrollment is for.
fn machine_info_serial(machine_info: &[u8]) -> Result<String, Box<Response>> {
    latchkey_certs::cms::attached_content_unverified(machine_info)
        .map_err(|e| e.to_string())
        .and_then(|plist| {
            crate::api::apple::machine_info::machine_info(&plist).map_err(|e| e.to_string())
        })
        .map(|info| info.serial)
        .map_err(|why| {
            Box::new(plain(
                StatusCode::BAD_REQUEST,
                format!("MachineInfo: {why}"),
            ))
        })
}

/// The signed enrollment profile for the listed device MachineInfo names.
async fn dep_enroll(web: &Web, machine_info: &[u8]) -> Response {
    let serial = match machine_info_serial(machine_info) {
        Ok(serial) => serial,
        Err(answer) => return *answer,
    };
    let apple = &web.core.apple;
    let enrollment = match apple.dep_enrollment(&serial, Utc::now()).await {
        Ok(enrollment) => enrollment,
        Err(CoreError::NotFound(_)) => {
            return plain(
                StatusCode::FORBIDDEN,
                "this device is not awaiting Automated Device Enrollment here",
            );
        }
        // The user's sign-in is required: only the web view offers it.
        Err(CoreError::FailedPrecondition(why)) => return plain(StatusCode::FORBIDDEN, why),
        Err(e) => return core_error(e),
    };
    match apple
        .enrollment_profile(&enrollment)
        .and_then(|profile| apple.sign_profile(&profile))
    {
        Ok(der) => signed_profile(der, false),
        Err(e) => core_error(e),
    }
}

/// A page in Setup Assistant's web view refusing the ADE sign-in.
fn dep_sign_in_refused(
    lang: super::i18n::Lang,
    status: StatusCode,
    text: &'static super::i18n::Text,
) -> Response {
    super::frame::page(
        lang,
        status,
        &super::i18n::DEP_SIGN_IN_TITLE,
        format!(
            r#"<p class="error" role="alert" data-failure="dep-sign-in">{}</p>"#,
            text.get(lang)
        ),
        "/apple/dep/enroll",
    )
    .into_response()
}

/// `[apple] dep_sign_in`: the web view of a listed device is sent to
/// Latchkey's sign-in, holding the secret of its pending sign-in in a
/// cookie only `/apple/dep/` receives.
async fn dep_sign_in_start(web: &Web, headers: &HeaderMap, machine_info: &[u8]) -> Response {
    let lang = super::language::language(headers, None);
    let serial = match machine_info_serial(machine_info) {
        Ok(serial) => serial,
        Err(answer) => return *answer,
    };
    match web
        .core
        .apple
        .start_dep_sign_in(&web.core.sign_in, &serial, Utc::now())
        .await
    {
        Ok(started) => super::frame::see_other(
            &started.authorize_url,
            &[super::cookies::dep_sign_in_cookie(&started.secret)],
        ),
        Err(CoreError::NotFound(_)) => dep_sign_in_refused(
            lang,
            StatusCode::FORBIDDEN,
            &super::i18n::DEP_SIGN_IN_NOT_LISTED,
        ),
        Err(e) => super::errors::unavailable(lang, &e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DepCallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// `GET /apple/dep/callback`: the ADE sign-in comes back with its code
/// (RFC 6749 §4.1.2). The web view that started it gets the signed
/// enrollment profile for the user who signed in; any other browser, a
/// replay or an expired sign-in gets a page saying so.
pub(super) async fn dep_callback(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(query): Query<DepCallbackQuery>,
) -> Response {
    use super::i18n as t;
    let lang = super::language::language(&headers, None);
    if !web.core.apple.settings().dep_sign_in {
        return dep_sign_in_refused(lang, StatusCode::NOT_FOUND, &t::DEP_SIGN_IN_OFF);
    }
    let apple = &web.core.apple;
    let secret = super::cookies::cookie(&headers, super::cookies::DEP_SIGN_IN_COOKIE);
    let finished = apple
        .finish_dep_sign_in(
            &web.core.sign_in,
            secret,
            query.state.as_deref(),
            query.code.as_deref(),
            Utc::now(),
        )
        .await;
    let enrollment = match finished {
        Ok(Ok(enrollment)) => enrollment,
        Ok(Err(DepSignInRefusal::OtherBrowser)) => {
            return dep_sign_in_refused(lang, StatusCode::FORBIDDEN, &t::DEP_SIGN_IN_OTHER_BROWSER);
        }
        Ok(Err(DepSignInRefusal::Expired)) => {
            return dep_sign_in_refused(lang, StatusCode::FORBIDDEN, &t::DEP_SIGN_IN_EXPIRED);
        }
        Ok(Err(DepSignInRefusal::AssignedToAnother)) => {
            return dep_sign_in_refused(lang, StatusCode::FORBIDDEN, &t::DEP_SIGN_IN_ASSIGNED);
        }
        Err(e) => return super::errors::unavailable(lang, &e),
    };
    match apple
        .enrollment_profile(&enrollment)
        .and_then(|profile| apple.sign_profile(&profile))
    {
        Ok(der) => signed_profile(der, false),
        Err(e) => super::errors::unavailable(lang, &e),
    }
}
