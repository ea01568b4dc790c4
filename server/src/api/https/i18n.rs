//! The sign-in pages' words in English and Japanese, and the `Lang` they
//! are chosen by (its codes and `Accept-Language` negotiation).
//!
//! Which language a request gets (`?lang=`, the cookie, the saved choice)
//! is decided in `language.rs`.

use crate::core::sso::NewPasswordProblem;

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The best of ours for an `Accept-Language` header (RFC 9110 §12.5.4);
    /// English when it names neither.
    pub fn negotiate(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// The other language, for the switcher link.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ja => "日本語",
        }
    }
}

/// A text in both languages.
pub struct Text {
    pub en: &'static str,
    pub ja: &'static str,
}

impl Text {
    pub fn get(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Ja => self.ja,
        }
    }
}

/// What the pages say about a new password that was not taken (the
/// sign-in step that replaces a temporary password, and the account page).
pub fn new_password_problem(problem: NewPasswordProblem) -> &'static Text {
    match problem {
        NewPasswordProblem::Mismatch => &PW_MISMATCH,
        NewPasswordProblem::TooShort => &PW_TOO_SHORT,
        NewPasswordProblem::TooLong => &PW_TOO_LONG,
    }
}

macro_rules! texts {
    ($($name:ident = $en:literal, $ja:literal;)*) => {
        $(pub const $name: Text = Text { en: $en, ja: $ja };)*
    };
}

texts! {
    PRODUCT = "Latchkey", "Latchkey";
    SIGN_IN_TITLE = "Sign in", "サインイン";
    SIGN_IN_TO = "to continue to", "次のアプリにサインイン:";
    EMAIL = "Email address", "メールアドレス";
    PASSWORD = "Password", "パスワード";
    SIGN_IN_BUTTON = "Sign in", "サインイン";
    BAD_CREDENTIALS = "The email address or password is not correct.", "メールアドレスまたはパスワードが正しくありません。";
    TEMPORARY_EXPIRED = "This temporary password has expired. Ask your IT department for a new one.", "この仮パスワードは有効期限が切れています。IT 部門に新しいパスワードを依頼してください。";
    LOCKED_OUT = "Too many attempts. Wait a moment and try again in (seconds):", "試行回数が多すぎます。しばらく待ってから再度お試しください。待ち時間（秒）:";
    CHANGE_PASSWORD_TITLE = "Choose a new password", "新しいパスワードの設定";
    CHANGE_PASSWORD_INTRO = "You signed in with a temporary password. Choose your own password to continue.", "仮パスワードでサインインしました。続行するには新しいパスワードを設定してください。";
    NEW_PASSWORD = "New password (at least 12 characters)", "新しいパスワード（12 文字以上）";
    CONFIRM_PASSWORD = "New password again", "新しいパスワード（確認）";
    SAVE_PASSWORD = "Save password", "パスワードを保存";
    PW_MISMATCH = "The two passwords differ.", "2 つのパスワードが一致しません。";
    PW_TOO_SHORT = "The password needs at least 12 characters.", "パスワードは 12 文字以上にしてください。";
    PW_TOO_LONG = "The password is too long (at most 256 characters).", "パスワードが長すぎます（最大 256 文字）。";
    CHOOSE_DEVICE_TITLE = "Choose this device", "このデバイスを選択";
    CHOOSE_DEVICE_INTRO = "You have several managed devices. Choose the one you are using now.", "管理対象のデバイスが複数あります。現在お使いのデバイスを選択してください。";
    USE_THIS_DEVICE = "Use this device", "このデバイスを使う";
    DEVICE_AUTH_TITLE = "Authenticate with this device", "このデバイスで認証";
    DEVICE_AUTH_BOUND = "This app can be opened only from your managed device. Press the button: the Latchkey agent on this computer confirms the sign-in.", "このアプリは管理対象のデバイスからのみ利用できます。ボタンを押すと、このコンピューターの Latchkey エージェントがサインインを確認します。";
    DEVICE_AUTH_CONFIRM = "Your device asks you to approve this sign-in. Type this number on the device:", "デバイスにサインインの承認を求める画面が表示されます。デバイスで次の番号を入力してください:";
    DEVICE_ANSWERED = "Your device answered. This page continues when the confirmation reaches this browser. If your device shows a code instead, type it below.", "デバイスが応答しました。確認がこのブラウザーに届くと、このページは自動的に続行します。デバイスにコードが表示された場合は、下に入力してください。";
    DEVICE_CODE_LABEL = "Code shown on your device (only if it shows one)", "デバイスに表示されたコード（表示された場合のみ）";
    DEVICE_CODE_WRONG = "That code is not the one your device shows. Guesses left:", "デバイスに表示されたコードと一致しません。残りの試行回数:";
    DEVICE_CODE_NOT_YET = "Your device has not answered yet. Press the button first; the code appears on your device after it answers.", "デバイスはまだ応答していません。先にボタンを押してください。応答後にデバイスにコードが表示されます。";
    PROOF_DELIVERED_TITLE = "Sign-in confirmed", "サインインを確認しました";
    PROOF_DELIVERED = "Your device confirmed the sign-in. It continues in the window where you started it; you can close this tab.", "デバイスでサインインを確認しました。サインインを開始したウィンドウで続行します。このタブは閉じてかまいません。";
    OTHER_BROWSER_TITLE = "This sign-in was not started in this browser", "このサインインはこのブラウザーで開始されたものではありません";
    OTHER_BROWSER_INTRO = "Your device answered a sign-in, but that sign-in was not started in this browser, so nothing was signed in here.", "デバイスがサインイン要求に応答しましたが、そのサインインはこのブラウザーで開始されたものではないため、ここでは何もサインインしていません。";
    OTHER_BROWSER_IF_YOU_TITLE = "If it was you", "ご自身の操作の場合";
    OTHER_BROWSER_IF_YOU = "You may be signing in from an app's own sign-in window or another browser. Your device shows a code: type it into that sign-in window.", "アプリのサインイン画面や別のブラウザーからサインインしている可能性があります。デバイスに表示されたコードを、そのサインイン画面に入力してください。";
    OTHER_BROWSER_IF_NOT_TITLE = "If it was not you", "心当たりがない場合";
    OTHER_BROWSER_IF_NOT = "Someone may know your password. Do not type the code anywhere, and tell", "第三者があなたのパスワードを知っている可能性があります。コードはどこにも入力せず、次の連絡先に知らせてください:";
    SUPPORT_DEFAULT = "your IT department", "IT 部門";
    FAILED_WRONG_NUMBER_TITLE = "The number did not match", "番号が一致しませんでした";
    FAILED_WRONG_NUMBER = "The number typed on your device is not the one this page showed, so the sign-in was refused. If you did not start a sign-in, someone may know your password: tell your IT department.", "デバイスで入力された番号がこのページの番号と一致しないため、サインインを拒否しました。サインインした覚えがない場合は、第三者があなたのパスワードを知っている可能性があります。IT 部門に知らせてください。";
    FAILED_NOT_DELIVERED_TITLE = "The confirmation did not reach this browser", "確認がこのブラウザーに届きませんでした";
    FAILED_NOT_DELIVERED = "Your device answered, but its confirmation never reached this browser in time. Try again from the browser on your managed device.", "デバイスは応答しましたが、確認が時間内にこのブラウザーに届きませんでした。管理対象デバイスのブラウザーからもう一度お試しください。";
    FAILED_TOO_MANY_CODES_TITLE = "Too many wrong codes", "コードの誤入力が多すぎます";
    FAILED_TOO_MANY_CODES = "Too many wrong codes were typed, so this sign-in was stopped. Start again.", "コードの誤入力が多すぎるため、このサインインを中止しました。最初からやり直してください。";
    FAILED_TOO_MANY_REQUESTS_TITLE = "Too many requests to your device", "デバイスへの要求が多すぎます";
    FAILED_TOO_MANY_REQUESTS = "Too many sign-in requests were sent to your device in a short time. Wait ten minutes and try again. If you did not start them, someone may know your password: tell your IT department.", "短時間にデバイスへのサインイン要求が多すぎます。10 分ほど待ってからもう一度お試しください。身に覚えがない場合は、第三者があなたのパスワードを知っている可能性があります。IT 部門に知らせてください。";
    FAILED_ENROLLMENT_TITLE = "Ask your IT department to set up your second factor", "二要素認証の設定を IT 部門に依頼してください";
    FAILED_ENROLLMENT = "This app needs an authenticator app, and you have none set up. An authenticator can be added at sign-in only with a temporary password from your IT department. Ask them to reset your second factor.", "このアプリには認証アプリが必要ですが、まだ設定されていません。サインイン時に認証アプリを追加できるのは、IT 部門から発行された仮パスワードを使う場合だけです。IT 部門に二要素認証のリセットを依頼してください。";
    DEVICE_AUTH_BUTTON = "Authenticate with this device", "このデバイスで認証";
    DEVICE_WAITING = "Waiting for the device…", "デバイスの応答を待っています…";
    DEVICE_CONTINUE = "Continue", "続行";
    DEVICE_EXPIRES = "This attempt expires at", "この認証の有効期限:";
    DEVICE_LABEL = "Device", "デバイス";
    FAILED_NO_DEVICE_TITLE = "No managed device", "管理対象デバイスがありません";
    FAILED_NO_DEVICE = "This app can be used only from a device your company manages, and no managed device is assigned to you. Ask your IT department to enroll your device.", "このアプリは会社が管理するデバイスからのみ利用できますが、あなたに割り当てられた管理対象デバイスがありません。IT 部門にデバイスの登録を依頼してください。";
    FAILED_NOT_ANSWERED_TITLE = "The device did not answer", "デバイスが応答しませんでした";
    FAILED_NOT_ANSWERED = "The Latchkey agent did not answer in time. Check that the agent is running on this device and try again.", "Latchkey エージェントが時間内に応答しませんでした。このデバイスでエージェントが動作していることを確認して、もう一度お試しください。";
    FAILED_LOCKED_TITLE = "This device is locked", "このデバイスはロックされています";
    FAILED_LOCKED = "Your IT department has locked this device, so it cannot be used to sign in. If you did not expect this, contact your helpdesk.", "このデバイスは IT 部門によってロックされているため、サインインに使用できません。心当たりがない場合はヘルプデスクに連絡してください。";
    FAILED_RETIRED_TITLE = "This device is no longer managed", "このデバイスは管理対象外です";
    FAILED_RETIRED = "This device has been retired or wiped and can no longer be used to sign in.", "このデバイスは廃止またはワイプされたため、サインインに使用できません。";
    FAILED_NOT_COMPLIANT_TITLE = "This device does not meet the security policy", "このデバイスはセキュリティポリシーを満たしていません";
    FAILED_NOT_COMPLIANT = "Fix the following, wait for the agent to report again (or restart it), then try again:", "次の項目を修正し、エージェントが再度報告するまで待ってから（またはエージェントを再起動してから）、もう一度お試しください:";
    FAILED_OTHER_USER_TITLE = "This device belongs to someone else", "このデバイスは別のユーザーのものです";
    FAILED_OTHER_USER = "The device that answered is assigned to another user. Sign in from your own managed device.", "応答したデバイスは別のユーザーに割り当てられています。ご自身の管理対象デバイスからサインインしてください。";
    FAILED_WRONG_NETWORK_TITLE = "Sign in from the device itself", "デバイス本体からサインインしてください";
    FAILED_WRONG_NETWORK = "The device answered, but this browser is not running on it. Open the app in a browser on your managed device.", "デバイスは応答しましたが、このブラウザーはそのデバイス上で動作していません。管理対象デバイスのブラウザーでアプリを開いてください。";
    FAILED_BAD_SIGNATURE_TITLE = "The device's answer was not valid", "デバイスの応答が無効です";
    FAILED_BAD_SIGNATURE = "The answer could not be verified, so the sign-in was refused. Contact your helpdesk if this happens again.", "応答を検証できなかったため、サインインを拒否しました。繰り返し発生する場合はヘルプデスクに連絡してください。";
    FAILED_EXPIRED_TITLE = "This sign-in has expired", "このサインインは期限切れです";
    FAILED_EXPIRED = "The sign-in took too long or was already finished. Go back to the app and start again.", "サインインに時間がかかりすぎたか、すでに完了しています。アプリに戻ってもう一度やり直してください。";
    FAILED_MFA_TITLE = "Second factor required", "二要素認証が必要です";
    FAILED_MFA = "This app requires a second factor that cannot be used right now (no mail server is set up, or the code could not be sent). Contact your IT department.", "このアプリには二要素認証が必要ですが、現在利用できません（メールサーバーが未設定か、コードを送信できませんでした）。IT 部門に連絡してください。";
    LOCKED_OUT_SHORT = "Too many attempts. Wait a few minutes and try again.", "試行回数が多すぎます。数分待ってから再度お試しください。";
    INTERACTION_REQUIRED = "Signing in needs you: open the app again to continue.", "サインインには操作が必要です。アプリをもう一度開いて続行してください。";
    FAILED_NETWORK_TITLE = "Not allowed from this network", "このネットワークからは利用できません";
    FAILED_NETWORK = "Your company allows signing in to this app only from its own networks (for example the office or the VPN). Connect to one of them and try again.", "このアプリへのサインインは、会社が許可したネットワーク（オフィスや VPN など）からのみ可能です。いずれかに接続してから再度お試しください。";
    DEVICE_AUTH_MOBILE = "On a managed phone or tablet?", "管理対象のスマートフォンやタブレットの場合:";
    DEVICE_AUTH_MOBILE_LINK = "Authenticate with its device certificate", "デバイス証明書で認証";
    NO_DEVICE_CERTIFICATE_TITLE = "No device certificate", "デバイス証明書がありません";
    NO_DEVICE_CERTIFICATE = "This browser did not present a device certificate. Use this link only on a phone or tablet your company manages (its profile installs the certificate), or go back and use the Latchkey agent.", "このブラウザーはデバイス証明書を提示しませんでした。このリンクは会社が管理するスマートフォンやタブレット（プロファイルで証明書がインストールされます）でのみ使用するか、前の画面に戻って Latchkey エージェントを使用してください。";
    DEVICE_CERTIFICATE_REFUSED = "This device certificate is not accepted: it is unknown, revoked or expired, or the device is locked or retired. Contact your IT department.", "このデバイス証明書は受け付けられません（不明、失効、期限切れ、またはデバイスがロックもしくは廃止されています）。IT 部門に連絡してください。";
    TOTP_TITLE = "Enter your code", "確認コードの入力";
    TOTP_INTRO = "Open your authenticator app and enter the 6-digit code it shows for Latchkey.", "認証アプリを開き、Latchkey に表示されている 6 桁のコードを入力してください。";
    TOTP_ENROLL_TITLE = "Set up an authenticator app", "認証アプリの設定";
    TOTP_ENROLL_INTRO = "Scan this QR code with an authenticator app (for example Google Authenticator or Microsoft Authenticator), then enter the 6-digit code it shows.", "認証アプリ（Google Authenticator、Microsoft Authenticator など）でこの QR コードを読み取り、表示された 6 桁のコードを入力してください。";
    TOTP_QR_ALT = "QR code for your authenticator app", "認証アプリ用の QR コード";
    TOTP_MANUAL = "Cannot scan? Enter this key in the app instead:", "読み取れない場合は、このキーをアプリに入力してください:";
    CODE_LABEL = "6-digit code", "6 桁のコード";
    VERIFY_BUTTON = "Verify", "確認";
    BAD_CODE = "That code is not correct, has expired or was already used. Enter the current code.", "コードが正しくないか、有効期限切れか、すでに使用されています。現在のコードを入力してください。";
    EMAIL_CODE_TITLE = "Check your email", "メールを確認してください";
    EMAIL_CODE_INTRO = "We sent a 6-digit code to", "6 桁のコードを次のアドレスに送信しました:";
    EMAIL_CODE_RESEND = "Send a new code", "コードを再送信";
    ACCOUNT_TITLE = "Your account", "アカウント";
    ACCOUNT_LINK = "Account and sign-in history", "アカウントとサインイン履歴";
    MFA_HEADING = "Second factor", "二要素認証";
    MFA_WHEN = "Ask for a second factor", "二要素認証を求めるタイミング";
    MFA_ALWAYS = "At every sign-in", "毎回のサインイン時";
    MFA_RISK = "Only from a new location (an address not used in 30 days)", "新しい場所からのみ（30 日間使用していないアドレス）";
    MFA_OFF = "Only when an app requires it", "アプリが要求する場合のみ";
    MFA_SAVE = "Save", "保存";
    MFA_SAVED = "Saved.", "保存しました。";
    STEP_UP_HEADING = "Confirm it's you", "本人確認";
    STEP_UP_INTRO_TOTP = "To change how your account is protected, enter your password and a code from your authenticator app. This lasts five minutes.", "アカウントの保護設定を変更するには、パスワードと認証アプリのコードを入力してください。確認は 5 分間有効です。";
    STEP_UP_INTRO_EMAIL = "To change how your account is protected, enter your password and a code we email you. This lasts five minutes.", "アカウントの保護設定を変更するには、パスワードとメールで届くコードを入力してください。確認は 5 分間有効です。";
    STEP_UP_ADMIN = "Your account has no second factor to confirm it's you, and a password alone cannot change how it is protected. Ask your IT department for a temporary password; after signing in with it you can set up an authenticator app and change your password.", "このアカウントには本人確認に使える二要素認証がなく、パスワードだけでは保護設定を変更できません。IT 部門に仮パスワードを依頼してください。仮パスワードでサインインすると、認証アプリの設定やパスワードの変更ができます。";
    STEP_UP_ACCOUNT = "Your sign-in has not passed your second factor. Confirm it's you to see your account.", "このサインインでは二要素認証が完了していません。アカウントを表示するには本人確認を行ってください。";
    STEP_UP_NEEDED = "Confirm it's you first: enter your password and a current code.", "先に本人確認を行ってください（パスワードと現在のコードを入力）。";
    STEP_UP_DONE = "Confirmed. You can change your settings for the next five minutes.", "確認しました。今から 5 分間、設定を変更できます。";
    STEP_UP_FAILED = "The password or the code is not correct.", "パスワードまたはコードが正しくありません。";
    STEP_UP_BUTTON = "Confirm", "確認";
    STEP_UP_SEND = "Email me a code", "コードをメールで送信";
    STEP_UP_SENT = "A code was sent to your email address.", "コードをメールアドレスに送信しました。";
    STEP_UP_NOT_SENT = "The code could not be sent. Try again later, or contact your IT department.", "コードを送信できませんでした。しばらくしてから再度お試しいただくか、IT 部門に連絡してください。";
    PASSWORD_HEADING = "Password", "パスワード";
    CURRENT_PASSWORD = "Current password", "現在のパスワード";
    PASSWORD_CHANGED = "Your password was changed. You were signed out everywhere else, and apps must sign in again.", "パスワードを変更しました。他の場所ではすべてサインアウトされ、アプリは再度サインインが必要です。";
    WRONG_CURRENT_PASSWORD = "The current password is not correct.", "現在のパスワードが正しくありません。";
    MFA_BELOW_MINIMUM = "Your organisation does not allow that setting.", "組織のポリシーにより、この設定は選択できません。";
    TOTP_ENROLLED = "Authenticator app: set up.", "認証アプリ: 設定済み";
    TOTP_NOT_ENROLLED = "Authenticator app: not set up.", "認証アプリ: 未設定";
    TOTP_ADD = "Set up an authenticator app", "認証アプリを設定";
    TOTP_REMOVE = "Remove the authenticator app", "認証アプリを削除";
    TOTP_REMOVE_HINT = "Enter a current code from the app to remove it.", "削除するには、アプリに表示されている現在のコードを入力してください。";
    TOTP_ADDED = "The authenticator app is set up.", "認証アプリを設定しました。";
    TOTP_REMOVED = "The authenticator app was removed.", "認証アプリを削除しました。";
    EMAIL_FACTOR_AVAILABLE = "Codes by email: available as a fallback.", "メールによるコード: 予備として利用できます。";
    LANGUAGE_HEADING = "Language", "言語";
    HISTORY_HEADING = "Sign-in history", "サインイン履歴";
    HISTORY_TIME = "Time (UTC)", "日時 (UTC)";
    HISTORY_SORT_OLDEST = "Oldest first", "古い順";
    HISTORY_SORT_NEWEST = "Newest first", "新しい順";
    HISTORY_IP = "IP address", "IP アドレス";
    HISTORY_BROWSER = "Browser and OS", "ブラウザーと OS";
    HISTORY_APP = "App", "アプリ";
    HISTORY_METHOD = "Method", "方式";
    HISTORY_RESULT = "Result", "結果";
    HISTORY_EMPTY = "No sign-ins yet.", "サインイン履歴はありません。";
    RESULT_OK = "Succeeded", "成功";
    RESULT_FAILED = "Failed", "失敗";
    TRY_AGAIN = "Try again", "もう一度試す";
    BAD_REQUEST_TITLE = "This sign-in link is not valid", "このサインインリンクは無効です";
    UNKNOWN_CLIENT = "The app that sent you here is not registered with Latchkey. Contact the app's administrator.", "このページに移動したアプリは Latchkey に登録されていません。アプリの管理者に連絡してください。";
    BAD_REDIRECT = "The app asked to send you to an address it has not registered, so Latchkey stopped here to protect you.", "アプリが未登録のアドレスへの移動を要求したため、安全のためここで停止しました。";
    TOO_LARGE = "The request is too large.", "リクエストが大きすぎます。";
    UNAVAILABLE = "The sign-in service is unavailable right now. Try again in a moment.", "サインインサービスは現在利用できません。しばらくしてからお試しください。";
    BAD_CSRF_TITLE = "The form expired", "フォームの有効期限が切れました";
    BAD_CSRF = "This form was not sent from the page Latchkey showed you, or it is too old. Go back to the app and start again.", "このフォームは Latchkey が表示したページから送信されていないか、古くなっています。アプリに戻ってもう一度やり直してください。";
    SIGNED_OUT_TITLE = "Signed out", "サインアウトしました";
    SIGNED_OUT = "You have signed out of Latchkey.", "Latchkey からサインアウトしました。";
    SKIP_TO_CONTENT = "Skip to content", "本文へ移動";
    HOME_TITLE = "Your apps", "アプリ一覧";
    ENROLL_TITLE = "Enroll your iPhone, iPad or Mac", "iPhone・iPad・Mac の登録";
    ENROLL_SIGN_IN_FIRST = "Sign in to Latchkey first (open an app from your company), then come back to this page.", "先に Latchkey にサインインしてから（会社のアプリを開いてください）、このページに戻ってください。";
    ENROLL_NEEDS_SECOND_FACTOR = "Enrolling a device needs a sign-in with your second factor (an authenticator app or an emailed code). Set one up on your account page, or ask your IT department for an enrollment profile.", "デバイスの登録には二要素目（認証アプリまたはメールのコード）でのサインインが必要です。アカウントページで設定するか、IT 部門に登録プロファイルを依頼してください。";
    ENROLL_CONFIRM_FIRST = "Enrolling a device needs a recent confirmation that it is you: confirm with your password and second factor on your account page, then open this page again within five minutes.", "デバイスの登録には本人確認が直近に必要です。アカウントページでパスワードと二要素目により確認してから、5 分以内にこのページを開き直してください。";
    ENROLL_OFF = "Enrollment from this page is turned off. Ask your IT department for an enrollment profile.", "このページからの登録は無効になっています。IT 部門に登録プロファイルを依頼してください。";
    DEP_SIGN_IN_TITLE = "Set up your device", "デバイスのセットアップ";
    DEP_SIGN_IN_NOT_LISTED = "This device is not waiting to be enrolled by your organization. Ask your IT department.", "このデバイスは組織による登録を待っていません。IT 部門にお問い合わせください。";
    DEP_SIGN_IN_OTHER_BROWSER = "This sign-in was started on another device, so it cannot enroll one here. If you did not start setting up a device, tell your IT department.", "このサインインは別のデバイスで開始されたため、ここではデバイスを登録できません。デバイスのセットアップを開始していない場合は、IT 部門に連絡してください。";
    DEP_SIGN_IN_ASSIGNED = "Your IT department assigned this device to someone else, so it cannot be enrolled as yours. Ask your IT department.", "この端末は IT 部門により別の利用者に割り当てられているため、あなたの端末として登録できません。IT 部門に問い合わせてください。";
    DEP_SIGN_IN_EXPIRED = "This sign-in has expired or was already used. Go back in the device's setup and start again.", "このサインインは期限切れか、すでに使用されています。デバイスのセットアップで前の画面に戻り、もう一度やり直してください。";
    DEP_SIGN_IN_OFF = "Signing in before device setup is not turned on.", "デバイスのセットアップ前のサインインは有効になっていません。";
    HOME_SIGNED_OUT = "Open an app from your company to sign in.", "サインインするには会社のアプリを開いてください。";
    SIGN_OUT = "Sign out", "サインアウト";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_follow_accept_language() {
        assert_eq!(Lang::negotiate("ja-JP,ja;q=0.9,en;q=0.8"), Lang::Ja);
        assert_eq!(Lang::negotiate("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(Lang::negotiate("fr-FR, ja;q=0.5"), Lang::Ja);
        assert_eq!(Lang::negotiate("fr-FR"), Lang::En);
        assert_eq!(Lang::negotiate(""), Lang::En);
        assert_eq!(Lang::negotiate("ja;q=0"), Lang::En);
    }
}
