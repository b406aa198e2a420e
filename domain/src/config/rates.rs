//! Rate limits as settings: the `N/window` type, every rule, and `RULES`,
//! the one table naming each rule's counter, variable, default and meaning.
//! The configuration parses its variables from it, the limiter counts by
//! it, the benchmark turns every rule off through it, and a test holds the
//! the table in docs/security.md to it. Adding a rule: a `Rule` variant and a row here.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

/// `N/duration`: at most N attempts per window; `0/…` turns the rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub limit: u64,
    pub window: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (limit, window) =
            s.split_once('/').ok_or_else(|| format!("{s:?}: expected N/duration, e.g. 10/15m"))?;
        let limit = limit.trim().parse().map_err(|_| format!("{s:?}: {limit:?} is not a number"))?;
        let window = humantime::parse_duration(window.trim()).map_err(|e| format!("{s:?}: {e}"))?;
        if window.as_secs() == 0 {
            return Err(format!("{s:?}: the window must be at least 1s"));
        }
        Ok(Self { limit, window })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, humantime::format_duration(self.window))
    }
}

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    LoginIp,
    LoginAccountIp,
    LoginAccount,
    LoginDevice,
    RegisterIp,
    RegisterEmail,
    RegisterGlobal,
    MailIp,
    MailAccount,
    TokenIp,
    PasswordAccount,
    OAuthIp,
    SecondFactorAccount,
    FactorChangeAccount,
    NoticeAccount,
    PasskeySignInNetwork,
    PasskeySignInGlobal,
    ProfileAccount,
}

/// One row of `RULES`.
pub struct RuleSpec {
    pub rule: Rule,
    /// Names the rule's counters (in their keys) and its metric label.
    pub name: &'static str,
    /// The variable (and, lower-cased, the flag) that sets it; two rules
    /// may share one budget.
    pub variable: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const RULES: [RuleSpec; 18] = [
    RuleSpec {
        rule: Rule::LoginIp,
        name: "login_ip",
        variable: "AUTHGATE_RATE_LOGIN_IP",
        default: "50/1m",
        meaning: "sign-in attempts per client (`login`, `completeSignIn`, `startPasskeySignIn`, `finishPasskeySignIn`, `reauthenticate`; an IPv4 address, an IPv6 /64)",
    },
    RuleSpec {
        rule: Rule::LoginAccountIp,
        name: "login_account_ip",
        variable: "AUTHGATE_RATE_LOGIN_ACCOUNT_IP",
        default: "10/15m",
        meaning: "failed logins and second-factor codes per account from one client (a success resets it)",
    },
    RuleSpec {
        rule: Rule::LoginAccount,
        name: "login_account",
        variable: "AUTHGATE_RATE_LOGIN_ACCOUNT",
        default: "100/15m",
        meaning: "failed logins and second-factor codes per account from all clients (a success resets it); not applied to the owner's trusted device",
    },
    RuleSpec {
        rule: Rule::LoginDevice,
        name: "login_device",
        variable: "AUTHGATE_RATE_LOGIN_ACCOUNT_IP",
        default: "10/15m",
        meaning: "failed logins and second-factor codes per trusted device (device cookie): the budget of one client for one account",
    },
    RuleSpec {
        rule: Rule::RegisterIp,
        name: "register_ip",
        variable: "AUTHGATE_RATE_REGISTER_IP",
        default: "20/1h",
        meaning: "registrations per client",
    },
    RuleSpec {
        rule: Rule::RegisterEmail,
        name: "register_email",
        variable: "AUTHGATE_RATE_REGISTER_EMAIL",
        default: "5/1h",
        meaning: "registration attempts per target address (each `EMAIL_TAKEN` probe counts)",
    },
    RuleSpec {
        rule: Rule::RegisterGlobal,
        name: "register_global",
        variable: "AUTHGATE_RATE_REGISTER_GLOBAL",
        default: "1000/1h",
        meaning: "registration attempts on the whole server (a ceiling on sign-up floods and probing from many addresses)",
    },
    RuleSpec {
        rule: Rule::MailIp,
        name: "mail_ip",
        variable: "AUTHGATE_RATE_MAIL_IP",
        default: "10/15m",
        meaning: "verification and reset mails requested per client",
    },
    RuleSpec {
        rule: Rule::MailAccount,
        name: "mail_account",
        variable: "AUTHGATE_RATE_MAIL_ACCOUNT",
        default: "3/15m",
        meaning: "verification and reset mails per target address",
    },
    RuleSpec {
        rule: Rule::TokenIp,
        name: "token_ip",
        variable: "AUTHGATE_RATE_TOKEN_IP",
        default: "20/15m",
        meaning: "token redemptions (`verifyEmail`, `resetPassword`) per client",
    },
    RuleSpec {
        rule: Rule::PasswordAccount,
        name: "password_account",
        variable: "AUTHGATE_RATE_PASSWORD_ACCOUNT",
        default: "10/15m",
        meaning: "password and code checks of a signed-in user (`changePassword`, `deleteAccount`, `setPassword`, `reauthenticate`, `confirmTotpSetup`)",
    },
    RuleSpec {
        rule: Rule::OAuthIp,
        name: "oauth_ip",
        variable: "AUTHGATE_RATE_OAUTH_IP",
        default: "30/1m",
        meaning: "OAuth sign-ins started per client",
    },
    RuleSpec {
        rule: Rule::SecondFactorAccount,
        name: "second_factor_account",
        variable: "AUTHGATE_RATE_SECOND_FACTOR_ACCOUNT",
        default: "10/1h",
        meaning: "second-factor codes per account from all clients (`completeSignIn` and `reauthenticate` share it; a right code resets it): a thief with the password or a session gets 10 guesses an hour at the 6-digit code; `completeSignIn` from the owner's trusted device does not spend it",
    },
    RuleSpec {
        rule: Rule::FactorChangeAccount,
        name: "factor_change_account",
        variable: "AUTHGATE_RATE_FACTOR_CHANGE_ACCOUNT",
        default: "10/1h",
        meaning: "additions to an account's factors, each of which mails its owner (`startTotpSetup`, `startPasskeyRegistration`, `regenerateRecoveryCodes`); removals (`removePasskey`, `disableTwoFactor`) are not counted, so an intruder who spends it cannot keep the owner from removing what they added",
    },
    RuleSpec {
        rule: Rule::NoticeAccount,
        name: "notice_account",
        variable: "AUTHGATE_RATE_NOTICE_ACCOUNT",
        default: "1/10m",
        meaning: "security notices mailed per account that say the same (the same change, the same list of ways in): repeats within the window are logged, not mailed",
    },
    RuleSpec {
        rule: Rule::PasskeySignInNetwork,
        name: "passkey_sign_in_network",
        variable: "AUTHGATE_RATE_PASSKEY_SIGN_IN_NETWORK",
        default: "1000/5m",
        meaning: "passkey sign-ins started per network (an IPv4 /24, an IPv6 /48), or per user with a session (`reauthenticate`): each is a stored ceremony until it ends or expires",
    },
    RuleSpec {
        rule: Rule::PasskeySignInGlobal,
        name: "passkey_sign_in_global",
        variable: "AUTHGATE_RATE_PASSKEY_SIGN_IN_GLOBAL",
        default: "100000/5m",
        meaning: "passkey sign-ins started without a session on the whole server: a ceiling on the rows many networks can make (reaching it takes 100 networks; a signed-in user's `reauthenticate` ceremony is never held back by it)",
    },
    RuleSpec {
        rule: Rule::ProfileAccount,
        name: "profile_account",
        variable: "AUTHGATE_RATE_PROFILE_ACCOUNT",
        default: "60/1h",
        meaning: "profile changes per account (`updateProfile`): each is a row of the event record, kept for `AUTHGATE_EVENT_RETENTION`, so a signed-in client cannot fill the disk",
    },
];

impl Rule {
    /// Its row: `RULES` is in the order of the variants (a unit test checks).
    pub(crate) fn spec(self) -> &'static RuleSpec {
        &RULES[self as usize]
    }

    pub(crate) fn name(self) -> &'static str {
        self.spec().name
    }
}

/// Every rule's rate, by variable: `#[command(flatten)]` into the
/// configuration, which so gets one flag and one variable per row of `RULES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates(BTreeMap<&'static str, Rate>);

impl Rates {
    pub fn get(&self, rule: Rule) -> Rate {
        let variable = rule.spec().variable;
        self.0.get(variable).copied().unwrap_or_else(|| default_of(variable))
    }

    /// Sets the rate of `rule` (and of any rule sharing its variable).
    pub fn set(&mut self, rule: Rule, rate: Rate) {
        self.0.insert(rule.spec().variable, rate);
    }

    /// Every rule off (the benchmark signs in from one address).
    pub fn off() -> Self {
        Self(
            RULES
                .iter()
                .map(|spec| (spec.variable, Rate { limit: 0, window: Duration::from_secs(1) }))
                .collect(),
        )
    }

    /// `(variable, rate)` for each variable.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, Rate)> + '_ {
        RULES.iter().map(|spec| (spec.variable, self.get(spec.rule)))
    }
}

impl Default for Rates {
    fn default() -> Self {
        Self(RULES.iter().map(|spec| (spec.variable, default_of(spec.variable))).collect())
    }
}

fn default_of(variable: &str) -> Rate {
    let spec = RULES.iter().find(|spec| spec.variable == variable).unwrap_or(&RULES[0]);
    spec.default.parse().unwrap_or(Rate { limit: 0, window: Duration::from_secs(1) })
}

/// `AUTHGATE_RATE_LOGIN_IP` → `rate-login-ip`.
fn flag(variable: &'static str) -> String {
    variable.trim_start_matches("AUTHGATE_").to_ascii_lowercase().replace('_', "-")
}

/// The distinct variables, in table order.
fn variables() -> Vec<&'static RuleSpec> {
    let mut seen = Vec::<&'static RuleSpec>::new();
    for spec in &RULES {
        if !seen.iter().any(|s| s.variable == spec.variable) {
            seen.push(spec);
        }
    }
    seen
}

impl clap::Args for Rates {
    fn augment_args(command: clap::Command) -> clap::Command {
        variables().into_iter().fold(command, |command, spec| {
            command.arg(
                clap::Arg::new(spec.variable)
                    .long(flag(spec.variable))
                    .env(spec.variable)
                    .default_value(spec.default)
                    .value_name("N/WINDOW")
                    .value_parser(|s: &str| s.parse::<Rate>())
                    .help(format!("{} (`N/window`; `0/1m` turns it off)", spec.meaning)),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for Rates {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut rates = Self::default();
        clap::FromArgMatches::update_from_arg_matches(&mut rates, matches)?;
        Ok(rates)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for spec in variables() {
            if let Some(rate) = matches.get_one::<Rate>(spec.variable) {
                self.0.insert(spec.variable, *rate);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let rate: Rate = "10/15m".parse().unwrap();
        assert_eq!((rate.limit, rate.window.as_secs()), (10, 900));
        assert_eq!("0/1h".parse::<Rate>().unwrap().limit, 0);
        for bad in ["10", "x/1m", "10/0s", "10/soon"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_is_whole_and_its_defaults_parse() {
        for (i, spec) in RULES.iter().enumerate() {
            assert_eq!(spec.rule as usize, i, "RULES is in the order of Rule's variants");
            assert!(spec.default.parse::<Rate>().is_ok(), "{}", spec.variable);
            let sharing: Vec<_> = RULES.iter().filter(|s| s.variable == spec.variable).collect();
            assert!(sharing.iter().all(|s| s.default == spec.default), "{} has one default", spec.variable);
        }
        let names: std::collections::HashSet<_> = RULES.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), RULES.len());
        assert_eq!(Rates::default().get(Rule::LoginDevice), Rates::default().get(Rule::LoginAccountIp));
        assert_eq!(Rates::default().get(Rule::OAuthIp).to_string(), "30/1m");
    }
}
