//! Property tests for the domain's parsers of outside input: email addresses, display names, passwords
//! (against the policy) and the stored names of roles, session end reasons and one-time token purposes.
//!
//! Every property asserts something beyond "does not panic": a classification, a bound, an invariant of the
//! accepted value, or a round-trip.

use std::collections::HashSet;
use std::str::FromStr;

use dashtam_domain::password::{Password, PasswordPolicy, PasswordProblem};
use dashtam_domain::{Email, EmailError, OneTimePurpose, Role, SessionEndReason, UserName, UserNameError};
use proptest::prelude::*;

/// Default case count, and no regression files written next to the sources.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Strings a person might type into an email field: plausible addresses (mixed case, surrounding
/// whitespace, quoted local parts, non-ASCII letters) and arbitrary Unicode.
fn email_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ \t\n]{0,2}[A-Za-z0-9._%+!#'*-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,10}){0,3}[ \t\n]{0,2}",
        "[ ]{0,1}\"[ A-Za-z0-9@.,é]{0,20}\"@[a-zA-Zé]{1,10}\\.[a-zA-Z]{2,4}",
        "[A-Za-zÀ-ÿΣσς0-9.]{1,30}@[A-Za-zÀ-ÿΣ0-9]{1,20}\\.[A-Za-z]{2,6}",
        ".{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary input never panics, and every accepted address is normalised: trimmed, lower-cased,
    /// at most 254 characters, with an `@` whose domain has a dot.
    #[test]
    fn email_parse_accepts_only_normalised_addresses(raw in email_like()) {
        match Email::parse(&raw) {
            Ok(email) => {
                let text = email.as_str();
                prop_assert!(!text.is_empty());
                prop_assert_eq!(text, text.trim(), "not trimmed");
                prop_assert_eq!(text.to_owned(), text.to_lowercase(), "not lower-cased");
                prop_assert!(text.chars().count() <= Email::MAX_LEN, "{} chars", text.chars().count());
                let (_, domain) = text.rsplit_once('@').expect("an accepted address has an @");
                prop_assert!(domain.contains('.'), "domain without a dot: {text}");
                prop_assert_eq!(email.to_string(), text);
                prop_assert!(text.starts_with(email.local_part()));
            }
            Err(EmailError::Empty) => prop_assert!(raw.trim().is_empty()),
            Err(EmailError::TooLong) => prop_assert!(raw.trim().chars().count() > Email::MAX_LEN),
            Err(EmailError::Invalid) => prop_assert!(!raw.trim().is_empty()),
        }
    }

    /// Parsing what parsing produced gives the same address: a stored address always reads back.
    #[test]
    fn email_parse_is_idempotent(raw in email_like()) {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email));
        }
    }

    /// Case and surrounding whitespace never change which account an ASCII address names.
    #[test]
    fn email_parse_ignores_ascii_case_and_surrounding_whitespace(
        raw in "[A-Za-z0-9._+-]{1,30}@[A-Za-z0-9-]{1,20}\\.[A-Za-z]{2,6}",
        before in "[ \t\r\n]{0,3}",
        after in "[ \t\r\n]{0,3}",
    ) {
        let padded = format!("{before}{}{after}", raw.to_ascii_uppercase());
        prop_assert_eq!(Email::parse(&padded), Email::parse(&raw.to_ascii_lowercase()));
    }

    /// Arbitrary input never panics; an accepted name is trimmed, 1–100 code points, free of control
    /// characters; and each refusal names the rule that was broken.
    #[test]
    fn user_name_parse_accepts_only_clean_names(
        raw in prop_oneof![any::<String>(), ".{0,120}", "[ \t]{0,3}[a-zA-Zé ]{0,110}[\t ]{0,3}"],
    ) {
        match UserName::parse(&raw) {
            Ok(name) => {
                let text = name.as_str();
                prop_assert_eq!(text, raw.trim());
                prop_assert!((1..=UserName::MAX_LEN).contains(&text.chars().count()));
                prop_assert!(!text.chars().any(char::is_control));
                prop_assert_eq!(UserName::parse(text), Ok(name.clone()), "not idempotent");
            }
            Err(UserNameError::Empty) => prop_assert!(raw.trim().is_empty()),
            Err(UserNameError::TooLong) => prop_assert!(raw.trim().chars().count() > UserName::MAX_LEN),
            Err(UserNameError::ControlCharacter) => prop_assert!(raw.trim().chars().any(char::is_control)),
        }
    }

    /// A control character anywhere inside a name (not just at its ends) is refused.
    #[test]
    fn user_name_refuses_embedded_control_characters(
        head in "[a-zA-Z]{1,20}",
        control in prop::char::ranges(vec!['\u{0}'..='\u{1f}', '\u{7f}'..='\u{9f}'].into()),
        tail in "[a-zA-Z]{1,20}",
    ) {
        let raw = format!("{head}{control}{tail}");
        prop_assert_eq!(UserName::parse(&raw), Err(UserNameError::ControlCharacter));
    }

    /// `check` never panics on arbitrary Unicode, and reports each problem at most once.
    #[test]
    fn password_check_reports_each_problem_once(
        text in prop_oneof![any::<String>(), ".{0,200}", "(dashtam|DashTam|alice|password|[a-z0-9 ]){0,20}"],
        policy in policy(),
        address in prop::option::of("[a-z]{1,8}@example\\.com"),
    ) {
        let email = address.map(|address| Email::parse(&address).expect("generated addresses are valid"));
        let result = policy.check(&Password::new(text.clone()), email.as_ref());
        let length = text.chars().count();
        match result {
            Ok(()) => {
                prop_assert!((policy.min_length..=policy.max_length).contains(&length));
                prop_assert!(!text.to_lowercase().contains("dashtam"));
            }
            Err(problems) => {
                prop_assert!(!problems.is_empty());
                let codes: HashSet<&str> = problems.iter().map(PasswordProblem::code).collect();
                prop_assert_eq!(codes.len(), problems.len(), "a code is repeated: {:?}", problems);
                prop_assert_eq!(
                    problems.contains(&PasswordProblem::TooShort { min: policy.min_length }),
                    length < policy.min_length
                );
                prop_assert_eq!(
                    problems.contains(&PasswordProblem::TooLong { max: policy.max_length }),
                    length > policy.max_length
                );
                prop_assert!(problems.iter().all(|problem| !problem.message().is_empty()));
            }
        }
    }

    /// A password shorter than the minimum (in code points, whatever their byte length) is too short.
    #[test]
    fn passwords_under_the_minimum_are_too_short(
        policy in policy(),
        chars in prop::collection::vec(any::<char>(), 0..64),
    ) {
        let text: String = chars.into_iter().take(policy.min_length - 1).collect();
        let problems = policy.check(&Password::new(text), None).expect_err("shorter than the minimum");
        prop_assert!(problems.contains(&PasswordProblem::TooShort { min: policy.min_length }), "{:?}", problems);
    }

    /// A password longer than the maximum is too long, however good its first `max_length` characters are:
    /// it is refused, never truncated to fit.
    #[test]
    fn passwords_over_the_maximum_are_refused_not_truncated(
        policy in policy(),
        extra in 1_usize..40,
        fill in prop::sample::select(vec!['k', 'é', '🔒', ' ', '7', 'Ω']),
    ) {
        let text: String = std::iter::repeat_n(fill, policy.max_length + extra).collect();
        let problems = policy.check(&Password::new(text), None).expect_err("longer than the maximum");
        prop_assert!(problems.contains(&PasswordProblem::TooLong { max: policy.max_length }), "{:?}", problems);
        let too_short = problems.iter().any(|problem| matches!(problem, PasswordProblem::TooShort { .. }));
        prop_assert!(!too_short, "{:?}", problems);
    }

    /// Stored enum names parse back to themselves; anything else is refused and quoted in the error.
    #[test]
    fn stored_names_round_trip_and_refuse_the_rest(raw in prop_oneof![any::<String>(), "[a-z_]{0,20}"]) {
        let roles = [Role::User, Role::Admin];
        let reasons = [
            SessionEndReason::Logout,
            SessionEndReason::Revoked,
            SessionEndReason::RefreshTokenReuse,
            SessionEndReason::PasswordChanged,
            SessionEndReason::TokenRotation,
            SessionEndReason::AccountDisabled,
        ];
        let purposes = [OneTimePurpose::VerifyEmail, OneTimePurpose::ResetPassword];
        for role in roles {
            prop_assert_eq!(Role::from_str(role.as_str()), Ok(role));
        }
        for reason in reasons {
            prop_assert_eq!(SessionEndReason::from_str(reason.as_str()), Ok(reason));
        }
        for purpose in purposes {
            prop_assert_eq!(OneTimePurpose::from_str(purpose.as_str()), Ok(purpose));
        }
        match Role::from_str(&raw) {
            Ok(role) => prop_assert_eq!(role.as_str(), raw.as_str()),
            Err(error) => prop_assert_eq!(error.0, raw.clone()),
        }
        match SessionEndReason::from_str(&raw) {
            Ok(reason) => prop_assert_eq!(reason.as_str(), raw.as_str()),
            Err(error) => prop_assert_eq!(error.0, raw.clone()),
        }
        match OneTimePurpose::from_str(&raw) {
            Ok(purpose) => prop_assert_eq!(purpose.as_str(), raw.as_str()),
            Err(error) => prop_assert_eq!(error.0, raw),
        }
    }
}

/// Valid policies (1 ≤ min ≤ max) with any combination of composition rules.
fn policy() -> impl Strategy<Value = PasswordPolicy> {
    (1_usize..40, 0_usize..100, any::<[bool; 4]>()).prop_map(|(min_length, spread, rules)| {
        let policy = PasswordPolicy {
            min_length,
            max_length: min_length + spread,
            require_uppercase: rules[0],
            require_lowercase: rules[1],
            require_digit: rules[2],
            require_symbol: rules[3],
        };
        debug_assert_eq!(policy.validate(), Ok(()));
        policy
    })
}

/// Addresses whose quoted local part is full of `İ` (U+0130), which lower-cases to two code points
/// (`i` + U+0307), next to a long ASCII domain: ≤ 254 characters as typed, more once normalised.
fn addresses_that_grow_when_lowercased() -> impl Strategy<Value = String> {
    (1_usize..=20, 150_usize..=231).prop_map(|(dotted_capitals, domain_len)| {
        let local = format!("\"{}\"", "İ".repeat(dotted_capitals));
        let mut domain = String::new();
        while domain.len() < domain_len.saturating_sub(4) {
            let label_len = (domain_len - 4 - domain.len()).min(63);
            domain.push_str(&"a".repeat(label_len));
            domain.push('.');
        }
        domain.push_str("com");
        format!("{local}@{domain}")
    })
}

proptest! {
    #![proptest_config(config())]

    /// See `email_normalisation_can_exceed_max_len_minimal`.
    #[test]
    fn email_parse_is_idempotent_when_lowercasing_grows_the_address(raw in addresses_that_grow_when_lowercased()) {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert!(email.as_str().chars().count() <= Email::MAX_LEN);
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email));
        }
    }
}

/// Regression: `"İ"@` and a 250-character domain is 254 characters as typed, but lower-casing turns `İ`
/// (U+0130) into two code points, so the normalised address would be 255 characters and fail to parse when
/// read back from storage. The limit now applies to the normalised form, so it is refused up front.
#[test]
fn an_address_that_lengthens_past_the_limit_when_lower_cased_is_refused() {
    let domain = format!("{}.{}.{}.{}.com", "a".repeat(63), "a".repeat(63), "a".repeat(63), "a".repeat(54));
    let raw = format!("\"İ\"@{domain}");
    assert_eq!(raw.chars().count(), 254);
    assert_eq!(Email::parse(&raw), Err(dashtam_domain::EmailError::TooLong));
}
