//! `latchctl app`: SSO apps (OpenID Connect clients) and their access policy.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an app; prints its client id (and secret, once).
    Add {
        name: String,
        /// An exact redirect URI; repeat for more.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A public client (SPA, native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        // --device and --mfa are read by the handler rather than by clap,
        // so an unknown word is refused with the words the server used.
        /// Which device a login must come from: none, confirm or bound.
        #[arg(long, default_value = "bound")]
        device: String,
        /// Second factor: none, totp or email.
        #[arg(long, default_value = "none")]
        mfa: String,
        /// Allow sign-ins only from this CIDR block (e.g. 203.0.113.0/24);
        /// repeat for more. Without it any address may sign in.
        #[arg(long = "allow-ip")]
        allow_ip: Vec<String>,
        /// Where the app's sign-out may send the browser (an exact URI);
        /// repeat for more. Without it a sign-out ends on Latchkey's page.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Let the app hold refresh tokens (when it asks for offline_access).
        #[arg(long)]
        offline_access: bool,
        /// How long refresh tokens may be renewed from the sign-in on, 1h to
        /// 365d (default 30d).
        #[arg(long)]
        refresh_lifetime: Option<String>,
    },
    List,
    /// Change an app; options left out keep their value.
    Update {
        name: String,
        /// Replaces all redirect URIs; repeat for more.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long)]
        device: Option<String>,
        #[arg(long)]
        mfa: Option<String>,
        /// Replaces the allowed CIDR blocks; repeat for more.
        #[arg(long = "allow-ip", conflicts_with = "any_ip")]
        allow_ip: Vec<String>,
        /// Removes every address rule: any address may sign in.
        #[arg(long)]
        any_ip: bool,
        /// Replaces the sign-out addresses; repeat for more.
        #[arg(
            long = "post-logout-redirect-uri",
            conflicts_with = "no_post_logout_redirect_uri"
        )]
        post_logout_redirect_uris: Vec<String>,
        /// Removes every sign-out address.
        #[arg(long)]
        no_post_logout_redirect_uri: bool,
        /// Whether the app may hold refresh tokens: true or false.
        #[arg(long)]
        offline_access: Option<bool>,
        /// Refresh tokens' absolute lifetime, 1h to 365d.
        #[arg(long)]
        refresh_lifetime: Option<String>,
        /// Issue a new client secret (shown once); the old one stops working.
        #[arg(long)]
        rotate_secret: bool,
    },
    Remove {
        name: String,
    },
}
