//! Sign-out (RP-initiated logout), the home page and the static files.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    csrf: Option<String>,
}

/// `GET|POST /logout`: RP-initiated logout (OpenID Connect RP-Initiated
/// Logout 1.0) and the home page's sign-out button. A GET without an ID
/// token of this session asks the user to confirm with a POST, so a link
/// elsewhere cannot sign anyone out.
pub async fn logout(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    method: axum::http::Method,
    params: Result<Form<LogoutParams>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = language(&headers, None);
    // `Form` reads the query string of a GET and the body of a POST.
    let params = params.map(|Form(p)| p).unwrap_or_default();
    let now = Utc::now();
    let session = match current_session(&web, &headers, &client).await {
        Ok(s) => s,
        Err(e) => return unavailable(lang, &e),
    };
    // The hint must be an ID token we issued, of the client named (when
    // one is), for this browser's session when it has one (by `sid`).
    let hint = match &params.id_token_hint {
        Some(token) => web.core.id_token_hint(token, now).await.ok().flatten(),
        None => None,
    }
    .filter(|h| {
        params
            .client_id
            .as_deref()
            .is_none_or(|client| client == h.client_id)
    })
    .filter(|h| {
        session
            .as_ref()
            .is_none_or(|(session, _)| session.id == h.session_id)
    });
    // A sign-out sends the browser away only to an address the hint's
    // client registered for sign-outs.
    let redirect = match (&params.post_logout_redirect_uri, &hint) {
        (Some(uri), Some(hint)) => web
            .core
            .post_logout_redirect(&hint.client_id, uri)
            .await
            .ok()
            .flatten()
            .map(|uri| {
                let mut pairs = Vec::new();
                if let Some(state) = &params.state {
                    pairs.push(("state", state.as_str()));
                }
                crate::core::sso::redirect_with(&uri, &pairs)
            }),
        _ => None,
    };
    if let Some((session, secret)) = &session {
        let confirmed = method == axum::http::Method::POST
            && params
                .csrf
                .as_deref()
                .is_some_and(|c| crate::core::sso::constant_eq(&Core::csrf_token(secret), c));
        let hinted = hint.as_ref().is_some_and(|h| h.session_id == session.id);
        if !(confirmed || hinted) {
            let csrf = Core::csrf_token(secret);
            let mut body = format!(
                r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}">"#,
                pages::esc(&csrf)
            );
            for (name, value) in [
                ("id_token_hint", &params.id_token_hint),
                ("post_logout_redirect_uri", &params.post_logout_redirect_uri),
                ("state", &params.state),
                ("client_id", &params.client_id),
            ] {
                if let Some(value) = value {
                    body.push_str(&format!(
                        r#"<input type="hidden" name="{name}" value="{}">"#,
                        pages::esc(value)
                    ));
                }
            }
            body.push_str(&format!(
                r#"<button type="submit">{}</button></form>"#,
                t::SIGN_OUT.get(lang)
            ));
            return page(lang, StatusCode::OK, &t::SIGN_OUT, body, "/logout").into_response();
        }
        if let Err(e) = web.core.end_session(session, "signed out", now).await {
            return unavailable(lang, &e);
        }
    }
    let cookies = [clear_session_cookie()];
    match redirect {
        Some(url) => see_other(&url, &cookies),
        None => {
            let mut page = page(
                lang,
                StatusCode::OK,
                &t::SIGNED_OUT_TITLE,
                pages::message(lang, &t::SIGNED_OUT),
                "/logout",
            );
            page.set_cookie = cookies.to_vec();
            page.into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct HomeQuery {
    lang: Option<String>,
}

/// `GET /`: the signed-in user's apps.
pub async fn home(
    State(web): State<Web>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Response {
    let session = match current_session(&web, &headers, &client).await {
        Ok(s) => s,
        Err(e) => return unavailable(language(&headers, None), &e),
    };
    let signed_in = match &session {
        Some((s, _)) if s.auth_time.is_some() => match &s.user_id {
            Some(id) => web.core.user_by_id(id).await.ok().flatten(),
            None => None,
        },
        _ => None,
    };
    let lang = language_for(
        &headers,
        query.lang.as_deref(),
        signed_in.as_ref().and_then(|u| u.locale.as_deref()),
    );
    let apps = if signed_in.is_some() {
        web.core.apps_for_home().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let csrf = session
        .as_ref()
        .map(|(_, secret)| Core::csrf_token(secret))
        .unwrap_or_default();
    let body = pages::home(
        lang,
        signed_in.as_ref().map(|u| u.email.as_str()),
        &apps,
        &csrf,
    );
    with_lang_cookie(
        page(lang, StatusCode::OK, &t::HOME_TITLE, body, "/").into_response(),
        query.lang.as_deref(),
    )
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

pub async fn device_auth_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::DEVICE_AUTH_SCRIPT,
    )
        .into_response()
}
