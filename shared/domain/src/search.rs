//! Finding episodes by the words of their title, series and description (`GET /episodes?q=`).
//!
//! The index is inverted: one entry per (token, episode) naming the fields the token is in. A
//! token is a word folded to lower case without accents ("Pilóto" is `piloto`), cut to
//! [`MAX_TOKEN_CHARS`]. Entries are grouped by their first two characters, so a query word is
//! one range read of its group: every token that starts with it (type-ahead). A one-character
//! word matches only that one-character token ("a", "2"), not every word starting with it.
//!
//! The search worker keeps the index: for an episode it reads the episode as it is now and the
//! index's record of what it holds (its [`IndexState`]), and writes only the difference
//! ([`Plan`]). Redelivered and out-of-order events change nothing, since the outcome depends on
//! the episode's current state, not on the event.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::episode::Episode;
use crate::ids::EpisodeId;
use crate::validation::FieldError;

/// Longer words are indexed (and looked up) by their first 32 characters.
pub const MAX_TOKEN_CHARS: usize = 32;
/// The longest `q` taken.
pub const MAX_QUERY_CHARS: usize = 200;
/// At most this many distinct words in `q`.
pub const MAX_WORDS: usize = 8;
/// A query word matching more index entries than this is too broad to rank: 422, type more.
pub const MAX_MATCHES_PER_WORD: usize = 25_000;
/// How long a worker's claim on an episode's index record holds: longer than the worker's
/// timeout (30 s), so a claim outlives only a worker that is gone.
pub const CLAIM_SECONDS: i64 = 90;

/// A word as the index holds it: folded, alphanumeric, 1 to [`MAX_TOKEN_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(String);

impl Token {
    /// A token read back from the index; `None` if it is not one this module makes.
    pub fn parse(s: &str) -> Option<Self> {
        let n = s.chars().count();
        let folded = (1..=MAX_TOKEN_CHARS).contains(&n)
            && s.chars().all(|c| is_word_char(c) && !c.is_uppercase());
        folded.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group its index entries are kept in: the first two characters (the token itself
    /// when it has one).
    pub fn group(&self) -> &str {
        match self.0.char_indices().nth(2) {
            Some((end, _)) => &self.0[..end],
            None => &self.0,
        }
    }

    /// Whether this query word finds `token`: a prefix of it, or, for a one-character word,
    /// the same token.
    pub fn finds(&self, token: &Token) -> bool {
        if self.0.chars().nth(1).is_none() {
            self == token
        } else {
            token.0.starts_with(&self.0)
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The accents folded away: the combining diacritical marks (U+0300 to U+036F) that Latin,
/// Greek and Cyrillic letters decompose into. Other scripts' marks (a kana's voicing mark, an
/// Indic vowel sign) change the letter, and stay.
fn is_accent(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

/// A character words are made of: letters, digits and the marks that stay on them.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Lower case without accents: compatibility decomposition, accents dropped, recomposed, and
/// the Latin letters that do not decompose spelled out ("ß" is "ss", "Ø" is "o").
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfkd().filter(|c| !is_accent(*c)).nfc() {
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ø' | 'Ø' => out.push('o'),
            'đ' | 'Đ' | 'ð' | 'Ð' => out.push('d'),
            'ł' | 'Ł' => out.push('l'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The tokens of a text, in order, repeats included: folded, split at every character that
/// is not a letter or a digit, each cut to [`MAX_TOKEN_CHARS`].
pub fn tokens(text: &str) -> impl Iterator<Item = Token> {
    fold(text)
        .split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .map(|w| Token(w.chars().take(MAX_TOKEN_CHARS).collect()))
        .collect::<Vec<_>>()
        .into_iter()
}

/// Which of the searched fields a token is in: a set of [`Fields::TITLE`], [`Fields::SERIES`]
/// and [`Fields::DESCRIPTION`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Fields(u8);

impl Fields {
    pub const TITLE: Self = Self(1);
    pub const SERIES: Self = Self(2);
    pub const DESCRIPTION: Self = Self(4);
    const ALL: u8 = 7;

    /// The set as the index stores it; `None` for a number that is not one.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits != 0 && bits & !Self::ALL == 0).then_some(Self(bits))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// How many fields: what a search ranks by.
    pub fn count(self) -> u8 {
        // At most 3 bits are set.
        self.0.count_ones() as u8
    }
}

/// What the index should hold for one episode: each token and the fields it is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms(BTreeMap<Token, Fields>);

impl Terms {
    /// The terms of an episode as it is; none for a deleted one (it is found no more).
    pub fn of(episode: &Episode) -> Self {
        let mut terms = Self::default();
        if episode.deleted.is_some() {
            return terms;
        }
        terms.add(episode.title.as_str(), Fields::TITLE);
        if let Some(series) = &episode.series {
            terms.add(series.as_str(), Fields::SERIES);
        }
        terms.add(episode.description.as_str(), Fields::DESCRIPTION);
        terms
    }

    fn add(&mut self, text: &str, field: Fields) {
        for token in tokens(text) {
            let fields = self.0.entry(token).or_default();
            *fields = fields.with(field);
        }
    }

    pub fn from_entries(entries: impl IntoIterator<Item = (Token, Fields)>) -> Self {
        Self(entries.into_iter().collect())
    }

    pub fn get(&self, token: &Token) -> Option<Fields> {
        self.0.get(token).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Token, Fields)> {
        self.0.iter().map(|(t, f)| (t, *f))
    }

    pub fn tokens(&self) -> impl Iterator<Item = &Token> {
        self.0.keys()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The index's record of one episode, as the worker reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexState {
    /// What its entries hold, as of `version`.
    pub terms: Terms,
    /// Tokens a worker meant to write and may have written before it stopped: entries that
    /// may exist beyond `terms`.
    pub pending: BTreeSet<Token>,
    /// The episode's version the terms are of; `None` before it was first indexed.
    pub version: Option<u64>,
}

impl IndexState {
    /// Whether the index is settled at this version: nothing to do for it.
    pub fn is_at(&self, version: Option<u64>) -> bool {
        self.pending.is_empty() && self.version.is_some() && self.version == version
    }
}

/// The writes that take the index from a state to the wanted terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Entries to write, new or with other fields (and any that may have been half-written).
    pub puts: Vec<(Token, Fields)>,
    /// Entries to remove: held or maybe held, and no longer wanted.
    pub deletes: Vec<Token>,
}

impl Plan {
    pub fn between(state: &IndexState, wanted: &Terms) -> Self {
        let puts = wanted
            .iter()
            .filter(|(token, fields)| {
                state.terms.get(token) != Some(*fields) || state.pending.contains(*token)
            })
            .map(|(token, fields)| (token.clone(), fields))
            .collect();
        let maybe_held: BTreeSet<&Token> = state.terms.tokens().chain(&state.pending).collect();
        let deletes = maybe_held
            .into_iter()
            .filter(|token| wanted.get(token).is_none())
            .cloned()
            .collect();
        Self { puts, deletes }
    }

    /// The tokens this plan writes that the state does not already account for: to be
    /// recorded as pending before they are written.
    pub fn unrecorded(&self, state: &IndexState) -> BTreeSet<Token> {
        self.puts
            .iter()
            .map(|(token, _)| token)
            .filter(|t| state.terms.get(t).is_none() && !state.pending.contains(*t))
            .cloned()
            .collect()
    }

    pub fn entry_writes(&self) -> usize {
        self.puts.len() + self.deletes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// `q`: the words all required, deduplicated, in the order given. A `q` without a letter or a
/// digit has no words, and finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(Vec<Token>);

impl SearchText {
    pub fn parse(q: &str) -> Result<Self, FieldError> {
        if q.chars().count() > MAX_QUERY_CHARS {
            return Err(FieldError::new("q", "must be at most 200 characters"));
        }
        let mut words: Vec<Token> = Vec::new();
        for token in tokens(q) {
            if !words.contains(&token) {
                words.push(token);
            }
        }
        if words.len() > MAX_WORDS {
            return Err(FieldError::new("q", "must have at most 8 distinct words"));
        }
        Ok(Self(words))
    }

    pub fn words(&self) -> &[Token] {
        &self.0
    }

    /// The words as one string, for a cursor's scope.
    pub fn canonical(&self) -> String {
        self.0
            .iter()
            .map(Token::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the episode as it is now has every word, and in how many fields: `None` when
    /// it does not (the index may lag behind an edit that took a word away).
    pub fn score(&self, episode: &Episode) -> Option<u8> {
        let terms = Terms::of(episode);
        let mut all = Fields::default();
        for word in &self.0 {
            let mut found: Option<Fields> = None;
            for (token, fields) in terms.iter() {
                if word.finds(token) {
                    found = Some(found.unwrap_or_default().with(fields));
                }
            }
            all = all.with(found?);
        }
        Some(all.count())
    }
}

/// One index entry a query word found: the episode, and the fields of the matching token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub episode: EpisodeId,
    pub fields: Fields,
}

/// Where an episode is in a search's order: more fields matched first, then newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ranked {
    pub score: u8,
    pub episode: EpisodeId,
}

impl Ranked {
    /// The order key: descending score, then descending id (ids grow with creation time).
    fn key(&self) -> (std::cmp::Reverse<u8>, std::cmp::Reverse<EpisodeId>) {
        (
            std::cmp::Reverse(self.score),
            std::cmp::Reverse(self.episode),
        )
    }

    /// Whether this comes after `other` in the search's order.
    pub fn is_after(&self, other: &Ranked) -> bool {
        self.key() > other.key()
    }
}

/// The episodes every word found, in the search's order. `per_word[i]` holds what word `i`
/// found (several entries per episode when the word is a prefix of several of its tokens).
pub fn rank(per_word: &[Vec<Match>]) -> Vec<Ranked> {
    let mut found: HashMap<EpisodeId, (usize, Fields)> = HashMap::new();
    for (i, matches) in per_word.iter().enumerate() {
        let mut this_word: HashMap<EpisodeId, Fields> = HashMap::new();
        for m in matches {
            let fields = this_word.entry(m.episode).or_default();
            *fields = fields.with(m.fields);
        }
        for (episode, fields) in this_word {
            if i == 0 {
                found.insert(episode, (1, fields));
            } else if let Some((words, all)) = found.get_mut(&episode)
                && *words == i
            {
                *words += 1;
                *all = all.with(fields);
            }
        }
    }
    let mut ranked: Vec<Ranked> = found
        .into_iter()
        .filter(|(_, (words, _))| *words == per_word.len())
        .map(|(episode, (_, fields))| Ranked {
            score: fields.count(),
            episode,
        })
        .collect();
    ranked.sort_by_key(Ranked::key);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{Actor, DisplayName, Role, UserId};
    use crate::episode::{Description, NewEpisode, SeriesName, Title};
    use crate::time::Timestamp;

    fn words(text: &str) -> Vec<String> {
        tokens(text).map(|t| t.0).collect()
    }

    fn episode(title: &str, series: Option<&str>, description: &str) -> Episode {
        let actor = Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        };
        NewEpisode {
            title: Title::parse(title).unwrap(),
            description: Description::parse(description).unwrap(),
            series: series.map(|s| SeriesName::parse(s).unwrap()),
            season: None,
            number: None,
            air_date: None,
        }
        .into_episode(EpisodeId::new(), &actor, Timestamp::now())
    }

    fn token(s: &str) -> Token {
        Token::parse(s).unwrap()
    }

    #[test]
    fn words_fold_case_and_accents_and_split_at_anything_else() {
        assert_eq!(
            words("Pilóto: the ÉTÉ-special, part 2!"),
            ["piloto", "the", "ete", "special", "part", "2"]
        );
        assert_eq!(
            words("Straße Øresund Łódź Ærø Þór"),
            ["strasse", "oresund", "lodz", "aero", "thor"]
        );
        assert_eq!(words("ﬁnal Ｎｏ１"), ["final", "no1"]);
        assert_eq!(words("  -- ... "), Vec::<String>::new());
        assert_eq!(words("東京 ライブ हिन्दी"), ["東京", "ライブ", "हिन्दी"]);
        let long = "a".repeat(40);
        assert_eq!(words(&long), ["a".repeat(MAX_TOKEN_CHARS)]);
    }

    #[test]
    fn a_word_finds_the_tokens_it_starts_and_a_letter_only_itself() {
        assert!(token("pil").finds(&token("pilot")));
        assert!(token("pilot").finds(&token("pilot")));
        assert!(!token("pilots").finds(&token("pilot")));
        assert!(!token("ilot").finds(&token("pilot")));
        assert!(token("a").finds(&token("a")));
        assert!(!token("a").finds(&token("apple")));
        assert_eq!(token("pilot").group(), "pi");
        assert_eq!(token("a").group(), "a");
        assert_eq!(token("été").group(), "ét");
    }

    #[test]
    fn tokens_read_back_only_when_folded() {
        assert!(Token::parse("pilot").is_some());
        assert!(Token::parse("Pilot").is_none());
        assert!(Token::parse("pi lot").is_none());
        assert!(Token::parse("").is_none());
        assert!(Token::parse(&"a".repeat(MAX_TOKEN_CHARS + 1)).is_none());
    }

    #[test]
    fn terms_name_each_token_s_fields_and_a_deleted_episode_has_none() {
        let mut e = episode(
            "The Pilot",
            Some("Harbour Lights"),
            "A pilot in the harbour.",
        );
        let terms = Terms::of(&e);
        assert_eq!(
            terms.get(&token("pilot")),
            Some(Fields::TITLE.with(Fields::DESCRIPTION))
        );
        assert_eq!(
            terms.get(&token("harbour")),
            Some(Fields::SERIES.with(Fields::DESCRIPTION))
        );
        assert_eq!(terms.get(&token("lights")), Some(Fields::SERIES));
        assert_eq!(terms.len(), 6);
        e.deleted = Some(e.updated.clone());
        assert!(Terms::of(&e).is_empty());
    }

    #[test]
    fn a_plan_writes_only_the_difference_and_clears_what_a_stopped_worker_may_have_left() {
        let before = Terms::from_entries([
            (token("pilot"), Fields::TITLE),
            (token("harbour"), Fields::SERIES),
            (token("rain"), Fields::DESCRIPTION),
        ]);
        let wanted = Terms::from_entries([
            (token("pilot"), Fields::TITLE),
            (token("harbour"), Fields::SERIES.with(Fields::TITLE)),
            (token("storm"), Fields::DESCRIPTION),
        ]);
        let state = IndexState {
            terms: before.clone(),
            pending: BTreeSet::from([token("ghost"), token("storm")]),
            version: Some(3),
        };
        let plan = Plan::between(&state, &wanted);
        assert_eq!(
            plan.puts,
            [
                (token("harbour"), Fields::SERIES.with(Fields::TITLE)),
                (token("storm"), Fields::DESCRIPTION)
            ]
        );
        assert_eq!(plan.deletes, [token("ghost"), token("rain")]);
        assert!(plan.unrecorded(&state).is_empty(), "storm is pending");
        let settled = IndexState {
            terms: wanted.clone(),
            pending: BTreeSet::new(),
            version: Some(4),
        };
        assert!(Plan::between(&settled, &wanted).is_empty());
        assert!(settled.is_at(Some(4)) && !settled.is_at(Some(5)) && !state.is_at(Some(3)));
        let fresh = IndexState::default();
        let plan = Plan::between(&fresh, &wanted);
        assert_eq!(plan.entry_writes(), 3);
        assert_eq!(plan.unrecorded(&fresh).len(), 3);
    }

    #[test]
    fn q_is_distinct_folded_words_within_limits() {
        let q = SearchText::parse("  Pil  HARBOUR pil ").unwrap();
        assert_eq!(q.canonical(), "pil harbour");
        for bad in [&"x".repeat(201), "a b c d e f g h i"] {
            let e = SearchText::parse(bad).unwrap_err();
            assert_eq!(e.field, "q", "{bad}");
        }
        for nothing in ["", " !? "] {
            assert!(SearchText::parse(nothing).unwrap().words().is_empty());
        }
        assert!(SearchText::parse("a b c d e f g h a").is_ok());
    }

    #[test]
    fn every_word_is_required_and_more_fields_rank_first_then_newest() {
        let older = EpisodeId::new();
        let newer = EpisodeId::new();
        let other = EpisodeId::new();
        let m = |episode, fields| Match { episode, fields };
        let per_word = vec![
            vec![
                m(older, Fields::TITLE),
                m(newer, Fields::TITLE),
                m(other, Fields::TITLE),
                m(older, Fields::SERIES),
            ],
            vec![m(older, Fields::DESCRIPTION), m(newer, Fields::TITLE)],
        ];
        let ranked = rank(&per_word);
        assert_eq!(
            ranked,
            [
                Ranked {
                    score: 3,
                    episode: older
                },
                Ranked {
                    score: 1,
                    episode: newer
                }
            ]
        );
        assert!(ranked[1].is_after(&ranked[0]));
        let one = rank(&per_word[..1]);
        assert_eq!(
            one.iter().map(|r| r.episode).collect::<Vec<_>>(),
            [older, other, newer]
        );
        assert!(rank(&[vec![], per_word[1].clone()]).is_empty());
    }

    #[test]
    fn the_episode_as_it_is_is_checked_again() {
        let e = episode("The Pilot", Some("Harbour"), "Rain all day.");
        assert_eq!(SearchText::parse("pil harb").unwrap().score(&e), Some(2));
        assert_eq!(SearchText::parse("rain pilot").unwrap().score(&e), Some(2));
        assert_eq!(SearchText::parse("pilot snow").unwrap().score(&e), None);
        assert_eq!(SearchText::parse("p").unwrap().score(&e), None);
    }
}
