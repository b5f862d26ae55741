//! Where a notification stands for its recipient: unseen, seen, read or archived; the moves
//! between them; and what each move does to the two counts the bell shows.
//!
//! The states nest: an unseen notification is unread, a read one is seen, an archived one is
//! read. So `unseen ≤ unread`, and archiving something unread takes it out of both counts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A notification's state for its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoteState {
    /// Not yet shown by the bell (new, or grown since it was shown).
    Unseen,
    /// Shown by the bell, not read.
    Seen,
    Read,
    /// Put away: read, and out of the inbox.
    Archived,
}

impl NoteState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unseen => "unseen",
            Self::Seen => "seen",
            Self::Read => "read",
            Self::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Unseen, Self::Seen, Self::Read, Self::Archived]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    pub fn is_unread(self) -> bool {
        matches!(self, Self::Unseen | Self::Seen)
    }

    pub fn is_unseen(self) -> bool {
        self == Self::Unseen
    }

    /// What the state adds to the (unread, unseen) counts.
    fn counted(self) -> Counts {
        Counts {
            unread: i64::from(self.is_unread()),
            unseen: i64::from(self.is_unseen()),
        }
    }
}

/// The two counts of the bell, or a change to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub unread: i64,
    pub unseen: i64,
}

impl Counts {
    /// What moving a notification from `from` to `to` does to the counts (`None`: it does not
    /// exist on that side).
    pub fn of_move(from: Option<NoteState>, to: Option<NoteState>) -> Self {
        let before = from.map(NoteState::counted).unwrap_or_default();
        let after = to.map(NoteState::counted).unwrap_or_default();
        Self {
            unread: after.unread - before.unread,
            unseen: after.unseen - before.unseen,
        }
    }

    pub fn is_zero(self) -> bool {
        self == Self::default()
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.unread += other.unread;
        self.unseen += other.unseen;
    }
}

/// What a recipient does to one of their notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The bell showed it.
    See,
    Read,
    Archive,
    /// Back to the inbox, read.
    Unarchive,
}

impl Transition {
    /// The state after the move, or `None` when the move changes nothing from `state`.
    pub fn apply(self, state: NoteState) -> Option<NoteState> {
        use NoteState::{Archived, Read, Seen, Unseen};
        match (self, state) {
            (Self::See, Unseen) => Some(Seen),
            (Self::Read, Unseen | Seen) => Some(Read),
            (Self::Archive, Unseen | Seen | Read) => Some(Archived),
            (Self::Unarchive, Archived) => Some(Read),
            _ => None,
        }
    }
}

/// What a move found, per notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Changed,
    /// It was already there (seeing a seen one, reading a read one): nothing changed.
    Unchanged,
    /// No such notification of this user.
    NotFound,
}

/// Which of a user's notifications a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoteFilter {
    /// Everything not archived.
    #[default]
    Inbox,
    Unread,
    Unseen,
    /// Read, not archived.
    Read,
    Archived,
    /// Archived or not.
    All,
}

impl NoteFilter {
    pub const NAMES: &'static [&'static str] =
        &["inbox", "unread", "unseen", "read", "archived", "all"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inbox" => Self::Inbox,
            "unread" => Self::Unread,
            "unseen" => Self::Unseen,
            "read" => Self::Read,
            "archived" => Self::Archived,
            "all" => Self::All,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Unread => "unread",
            Self::Unseen => "unseen",
            Self::Read => "read",
            Self::Archived => "archived",
            Self::All => "all",
        }
    }

    /// The unread ones of this filter (`unread=true` beside a `state`): `None` when there
    /// are none by definition (read ones, archived ones).
    pub fn unread_only(self) -> Option<Self> {
        match self {
            Self::Inbox | Self::All | Self::Unread => Some(Self::Unread),
            Self::Unseen => Some(Self::Unseen),
            Self::Read | Self::Archived => None,
        }
    }

    pub fn admits(self, state: NoteState) -> bool {
        match self {
            Self::Inbox => state != NoteState::Archived,
            Self::Unread => state.is_unread(),
            Self::Unseen => state.is_unseen(),
            Self::Read => state == NoteState::Read,
            Self::Archived => state == NoteState::Archived,
            Self::All => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NoteState::{Archived, Read, Seen, Unseen};
    use super::*;

    const ALL: [NoteState; 4] = [Unseen, Seen, Read, Archived];
    const MOVES: [Transition; 4] = [
        Transition::See,
        Transition::Read,
        Transition::Archive,
        Transition::Unarchive,
    ];

    #[test]
    fn the_moves() {
        assert_eq!(Transition::See.apply(Unseen), Some(Seen));
        assert_eq!(Transition::See.apply(Read), None);
        assert_eq!(Transition::Read.apply(Unseen), Some(Read));
        assert_eq!(Transition::Read.apply(Seen), Some(Read));
        assert_eq!(Transition::Read.apply(Archived), None);
        assert_eq!(Transition::Archive.apply(Unseen), Some(Archived));
        assert_eq!(Transition::Archive.apply(Archived), None);
        assert_eq!(Transition::Unarchive.apply(Archived), Some(Read));
        assert_eq!(Transition::Unarchive.apply(Seen), None);
    }

    #[test]
    fn unseen_is_never_more_than_unread_whatever_the_moves() {
        // Every sequence of three moves from every state: the counts follow the states.
        for start in ALL {
            for a in MOVES {
                for b in MOVES {
                    for c in MOVES {
                        let mut state = start;
                        let mut counts = Counts::of_move(None, Some(start));
                        for t in [a, b, c] {
                            if let Some(next) = t.apply(state) {
                                counts += Counts::of_move(Some(state), Some(next));
                                state = next;
                            }
                        }
                        assert_eq!(counts, Counts::of_move(None, Some(state)));
                        assert!(counts.unseen <= counts.unread);
                        assert!(counts.unseen >= 0 && counts.unread >= 0);
                    }
                }
            }
        }
    }

    #[test]
    fn names_round_trip_and_filters_admit_their_states() {
        for s in ALL {
            assert_eq!(NoteState::parse(s.as_str()), Some(s));
        }
        for name in NoteFilter::NAMES {
            assert_eq!(NoteFilter::parse(name).map(NoteFilter::as_str), Some(*name));
        }
        assert!(NoteFilter::parse("new").is_none());
        let admitted = |f: NoteFilter| ALL.into_iter().filter(|s| f.admits(*s)).count();
        assert_eq!(admitted(NoteFilter::Inbox), 3);
        assert_eq!(admitted(NoteFilter::Unread), 2);
        assert_eq!(admitted(NoteFilter::All), 4);
        // Narrowed to unread ones: what is left of each filter, and nothing of read ones.
        for name in NoteFilter::NAMES {
            let f = NoteFilter::parse(name).unwrap();
            let left: Vec<NoteState> = ALL
                .into_iter()
                .filter(|s| f.admits(*s) && s.is_unread())
                .collect();
            let narrowed: Vec<NoteState> = match f.unread_only() {
                Some(g) => ALL.into_iter().filter(|s| g.admits(*s)).collect(),
                None => Vec::new(),
            };
            assert_eq!(left, narrowed, "{name}");
        }
    }
}
