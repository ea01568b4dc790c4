//! The audit log's entries, before and after they are stored: who acted
//! ([`Actor`]), what they did ([`AuditAction`]), on what, and how it ended.
//! The store writes the actor and the action in their text forms, which are
//! what `latchctl audit` prints and what readers of the log search for.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::ids::{ClientId, DeviceId};

/// Declares an enum of unit variants, each with its fixed text, and
/// optionally one variant wrapping another such enum whose text it takes.
/// `ALL` lists the unit variants, so a test sees every text without a list
/// that could fall behind the enum.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[doc = $doc:literal])* $variant:ident = $text:literal,)+
        }
        $(wrapping $(#[doc = $wrapper_doc:literal])* $wrapper:ident($inner:ident);)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[doc = $doc])* $variant,)+
            $($(#[doc = $wrapper_doc])* $wrapper($inner),)?
        }

        impl $name {
            /// Every unit variant, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored and printed for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                    $($name::$wrapper(inner) => inner.as_str(),)?
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What an audit entry records, as the `action` column names it. Each
    /// operation's own entry is `noun.verb`; an admin's request refused for
    /// lack of permission is recorded under the request's phrase instead
    /// (`add admins`), the same words the refusal shows the admin.
    pub enum AuditAction {
        AdminAdd = "admin.add",
        /// An unknown or revoked admin API token was presented.
        AdminAuthenticate = "admin.authenticate",
        /// The first owner, created at first start.
        AdminBootstrap = "admin.bootstrap",
        AppAdd = "app.add",
        ApplePushCertificateImport = "apple-push-certificate.import",
        /// A one-time SCEP challenge made for an enrollment profile.
        AppleEnrollmentProfileCreate = "apple-enrollment-profile.create",
        /// The key pair of an Automated Device Enrollment token.
        AppleDepKeypairCreate = "apple-dep-keypair.create",
        AppleDepTokenImport = "apple-dep-token.import",
        /// A renewal of an Apple device's identity certificate started
        /// (by the renewal schedule or an admin), or ended without one.
        AppleIdentityRenew = "apple-identity.renew",
        /// A device checked in with its renewed identity certificate and
        /// is bound to it; the one it replaced is revoked.
        AppleIdentityRebind = "apple-identity.rebind",
        /// One sync of a token's device list, and how it ended.
        AppleDepSync = "apple-dep.sync",
        AppleDepCursorReset = "apple-dep-cursor.reset",
        /// Setup Assistant's web view sent to sign in before a listed
        /// device gets its enrollment profile.
        AppleDepSignInStart = "apple-dep-sign-in.start",
        /// That sign-in came back: the profile handed out for the user who
        /// signed in, or refused.
        AppleDepSignInFinish = "apple-dep-sign-in.finish",
        AppRemove = "app.remove",
        AppUpdate = "app.update",
        /// Refusals of unauthenticated callers past the flood gate's bound,
        /// counted in one entry.
        AuditSuppressed = "audit.suppressed",
        CommandAcknowledge = "command.acknowledge",
        /// A command the server queued by itself (an Apple device's
        /// inventory, its policy profile).
        CommandQueue = "command.queue",
        DeviceAssign = "device.assign",
        /// An Apple device's Authenticate, first TokenUpdate, CheckOut or
        /// bootstrap-token escrow and release.
        DeviceCheckIn = "device.check-in",
        DeviceEnroll = "device.enroll",
        DeviceLock = "device.lock",
        DeviceLostMode = "device.lost-mode",
        /// An admin was shown a Mac's lock or erase PIN (`device show`).
        DevicePinRead = "device-pin.read",
        DeviceLocate = "device.locate",
        DeviceRestart = "device.restart",
        DeviceRenew = "device.renew",
        DeviceRetire = "device.retire",
        DeviceUnlock = "device.unlock",
        DeviceWipe = "device.wipe",
        /// The agent acknowledged a wipe; the device ended.
        DeviceWiped = "device.wiped",
        GroupAdd = "group.add",
        /// A refused MQTT connection.
        MqttConnect = "mqtt.connect",
        /// A connected device broke its topic rules and was disconnected.
        MqttForbidden = "mqtt.forbidden",
        PolicyAssign = "policy.assign",
        PolicySet = "policy.set",
        SigningKeyRotate = "signing-key.rotate",
        /// A break-glass user signed in without the app's device requirement.
        SsoBreakGlass = "sso.break-glass",
        /// A device's redemption link arrived in another browser than the
        /// one that started the sign-in.
        SsoDeviceAnswerUnfinished = "sso.device-answer-unfinished",
        /// A used refresh token was presented again.
        SsoRefreshReuse = "sso.refresh-reuse",
        TokenCreate = "token.create",
        TokenRevoke = "token.revoke",
        UserActivate = "user.activate",
        UserAdd = "user.add",
        UserDelete = "user.delete",
        UserImport = "user.import",
        UserMfaSetting = "user.mfa-setting",
        UserPasswordChange = "user.password-change",
        UserResetMfa = "user.reset-mfa",
        UserResetPassword = "user.reset-password",
        UserSuspend = "user.suspend",
        UserTotpEnroll = "user.totp-enroll",
        UserTotpRemove = "user.totp-remove",
    }
    wrapping
    /// An admin's request refused because their role lacks the permission.
    PermissionDenied(AdminRequest);
}

text_enum! {
    /// What an admin asked to do, in the words a refusal uses: they complete
    /// "your role may not …" and are the action of the denied audit entry.
    pub enum AdminRequest {
        AddAdmins = "add admins",
        /// Only an owner adds owners.
        AddOwners = "add owners",
        ListAdmins = "list admins",
        ReadAuditLog = "read the audit log",
        CreateEnrollmentTokens = "create enrollment tokens",
        ListEnrollmentTokens = "list enrollment tokens",
        RevokeEnrollmentTokens = "revoke enrollment tokens",
        ListDevices = "list devices",
        ShowDevices = "show devices",
        ListCommands = "list commands",
        LockDevices = "lock devices",
        UnlockDevices = "unlock devices",
        WipeDevices = "wipe devices",
        RetireDevices = "retire devices",
        AssignDevices = "assign devices",
        ChangePolicies = "change policies",
        AssignPolicies = "assign policies",
        ReadPolicies = "read policies",
        RegisterApps = "register apps",
        ListApps = "list apps",
        ChangeApps = "change apps",
        RemoveApps = "remove apps",
        RotateSigningKeys = "rotate signing keys",
        ListSigningKeys = "list signing keys",
        AddUsers = "add users",
        ImportUsers = "import users",
        ListUsers = "list users",
        ShowUsers = "show users",
        ActivateUsers = "activate users",
        SuspendUsers = "suspend users",
        DeleteUsers = "delete users",
        ResetPasswords = "reset passwords",
        ResetSecondFactors = "reset second factors",
        AddGroups = "add groups",
        ListGroups = "list groups",
        ImportApplePushCertificates = "import apple push certificates",
        ShowAppleStatus = "show the apple status",
        CreateAppleEnrollmentProfiles = "create apple enrollment profiles",
        LocateDevices = "locate devices",
        RestartDevices = "restart devices",
        RenewAppleIdentities = "renew apple identities",
        ListDeviceProfiles = "list device profiles",
        CreateAppleDepKeypairs = "create apple ade key pairs",
        ImportAppleDepTokens = "import apple ade tokens",
        SyncAppleDep = "sync apple ade devices",
        ResetAppleDepCursors = "reset apple ade cursors",
    }
}

/// Who did what an audit entry records. People are named by e-mail address,
/// machines by id. The text form (`Display`), stored in the `actor` column
/// and printed by `latchctl audit`, is one of:
///
/// - `admin:<email>`: an admin, authenticated by their API token;
/// - `device:<device id>`: a device, authenticated by its certificate, or a
///   refused one whose certificate names it;
/// - `device:(enrolling)`: a device refused while enrolling, before it has
///   an id;
/// - `device:(unknown)`: a device refused at MQTT connect whose
///   certificate names no device;
/// - `user:<email>`: a user, on the sign-in pages or their account page;
/// - `client:<client id>`: an SSO app, at the token endpoint;
/// - `system`: the server itself;
/// - `unknown`: a caller nobody could authenticate (an admin API token
///   that matches no admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An admin, by e-mail address.
    Admin(String),
    Device(DeviceId),
    EnrollingDevice,
    UnknownDevice,
    /// A user, by e-mail address.
    User(String),
    Client(ClientId),
    System,
    Unknown,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin(email) => write!(f, "admin:{email}"),
            Actor::Device(id) => write!(f, "device:{id}"),
            Actor::EnrollingDevice => f.write_str("device:(enrolling)"),
            Actor::UnknownDevice => f.write_str("device:(unknown)"),
            Actor::User(email) => write!(f, "user:{email}"),
            Actor::Client(id) => write!(f, "client:{id}"),
            Actor::System => f.write_str("system"),
            Actor::Unknown => f.write_str("unknown"),
        }
    }
}

/// How the operation an entry records ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Ok,
    Denied,
    /// Allowed, but it did not succeed (an outside service failed).
    Failed,
}

impl AuditOutcome {
    /// The text stored in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(AuditOutcome::Ok),
            "denied" => Some(AuditOutcome::Denied),
            "failed" => Some(AuditOutcome::Failed),
            _ => None,
        }
    }
}

/// One line of the audit log, before it is stored.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    pub target: String,
    pub outcome: AuditOutcome,
    pub detail: String,
}

/// One line of the audit log as stored: the actor and the action in their
/// text forms (entries of older releases keep the words they were written
/// with), the outcome read back into its enum.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: AuditOutcome,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn is_word(text: &str) -> bool {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    #[test]
    fn every_action_is_a_distinct_noun_dot_verb() {
        let mut seen = HashSet::new();
        for action in AuditAction::ALL {
            let text = action.as_str();
            assert!(seen.insert(text), "{text} is used twice");
            let well_formed = text
                .split_once('.')
                .is_some_and(|(noun, verb)| is_word(noun) && is_word(verb));
            assert!(well_formed, "{text} is not noun.verb");
        }
    }

    #[test]
    fn refused_requests_are_distinct_phrases_apart_from_the_actions() {
        let actions: HashSet<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        let mut seen = HashSet::new();
        for request in AdminRequest::ALL {
            let text = AuditAction::PermissionDenied(*request).as_str();
            assert_eq!(text, request.as_str());
            assert!(seen.insert(text), "{text} is used twice");
            assert!(!actions.contains(text), "{text} is also an action");
            assert!(
                text.split(' ').all(is_word),
                "{text:?} is not lower-case words"
            );
        }
    }

    #[test]
    fn outcomes_read_back_from_their_stored_text() {
        for outcome in [AuditOutcome::Ok, AuditOutcome::Denied] {
            assert_eq!(AuditOutcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(AuditOutcome::parse("Denied"), None);
    }

    #[test]
    fn actors_print_their_documented_forms() {
        let device = DeviceId::generate();
        let client = ClientId::generate();
        let cases = [
            (
                Actor::Admin("desk@example.com".into()),
                "admin:desk@example.com".to_owned(),
            ),
            (Actor::Device(device.clone()), format!("device:{device}")),
            (Actor::EnrollingDevice, "device:(enrolling)".to_owned()),
            (Actor::UnknownDevice, "device:(unknown)".to_owned()),
            (
                Actor::User("alice@example.com".into()),
                "user:alice@example.com".to_owned(),
            ),
            (Actor::Client(client.clone()), format!("client:{client}")),
            (Actor::System, "system".to_owned()),
            (Actor::Unknown, "unknown".to_owned()),
        ];
        for (actor, text) in cases {
            assert_eq!(actor.to_string(), text);
        }
    }
}
