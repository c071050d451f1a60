//! Which session the request's cookies name, when several carry the session's name.

/// What the request's session cookies name, after verification.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sole<T> {
    /// No cookie verified.
    None,
    /// Every cookie that verified names this one session.
    One(T),
    /// Cookies that verify name different sessions.
    Ambiguous,
}

/// The duplicate-cookie rule: of several cookies with the session's name, the session is the
/// one they name only when every cookie that verifies names the same session; when two
/// verified cookies name different sessions, none is trusted and the request has no session.
///
/// A sibling subdomain can set a cookie of the plain name with `Domain=` the parent and a
/// longer `Path`, and browsers send it first; it can be a valid cookie of the attacker's own
/// session. Trusting the first that verifies would work the victim inside the attacker's
/// session; trusting the last would only invert the attack. Under this rule the attacker
/// gains nothing but what it can already do to a sibling (make the victim start afresh on
/// the paths its cookie covers). Cookies that do not verify (garbage, forged, another app's
/// `session`) are ignored, so they never log anyone out. With the default `__Host-` name a
/// sibling cannot set the cookie at all.
pub(crate) fn sole<T: PartialEq>(verified: impl IntoIterator<Item = T>) -> Sole<T> {
    let mut found = Sole::None;
    for id in verified {
        found = match found {
            Sole::None => Sole::One(id),
            Sole::One(seen) if seen == id => Sole::One(seen),
            Sole::One(_) | Sole::Ambiguous => return Sole::Ambiguous,
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_session_named_by_every_verified_cookie_is_trusted() {
        assert_eq!(sole(Vec::<u8>::new()), Sole::None);
        assert_eq!(sole([7]), Sole::One(7));
        assert_eq!(sole([7, 7]), Sole::One(7), "the same session twice");
        assert_eq!(sole([1, 2]), Sole::Ambiguous, "a tossed cookie sent first");
        assert_eq!(sole([2, 1]), Sole::Ambiguous, "or last");
        assert_eq!(sole([1, 1, 2]), Sole::Ambiguous);
        assert_eq!(sole([1, 2, 1]), Sole::Ambiguous);
    }
}
