//! Write sharding for a newest-first index: one logical list written across several partition
//! key values, read back by querying each and merging.
//!
//! A GSI partition takes about 1,000 writes a second; a list whose every item carries the same
//! partition key (`list_pk = "episodes"`) throttles the whole table past that. So each item goes
//! to one of [`LIST_SHARDS`] keys (`episodes#0` … `episodes#7`), chosen from its id's random bits
//! ([`domain::EpisodeId::bucket`]), and a page is merged from all of them:
//!
//! - every partition is queried in parallel for a share of the page (a little more than
//!   `page / partitions`: sorted ids spread evenly, so most pages need nothing else);
//! - the merge takes the newest head among the partitions, one item at a time, and never
//!   passes a partition whose fetched items ran out while it may hold more: that partition is
//!   queried again first (for what the page still lacks, so at most once more unless DynamoDB's
//!   1 MB limit cut the answer short);
//! - the cursor is the last id returned, and each partition resumes at `id < cursor`, so a
//!   page deep in the list costs what the first one costs.

use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU8;

use futures_util::future::try_join_all;

/// How many partition key values each newest-first list is written across: eight GSI
/// partitions, so about 8,000 writes a second before DynamoDB throttles the index.
///
/// Changing it changes where stored items are found: the readers would have to query the old
/// keys too until a migration like `infra/migrate_list_keys.py` has moved every item.
pub const LIST_SHARDS: NonZeroU8 = match NonZeroU8::new(8) {
    Some(n) => n,
    None => panic!("eight is not zero"),
};

/// The partition key value of an item with this id in the list whose unsharded key was
/// `list`: `list#k`.
pub fn shard_key(list: &str, id: domain::EpisodeId) -> String {
    format!("{list}#{}", id.bucket(LIST_SHARDS))
}

/// Every key a reader of the list `list` queries: the shards, then `list` itself, where items
/// written before the sharding stay until the migration moves them (an empty partition costs
/// one minimal read).
pub fn read_keys(list: &str) -> Vec<String> {
    (0..LIST_SHARDS.get())
        .map(|k| format!("{list}#{k}"))
        .chain(std::iter::once(list.to_owned()))
        .collect()
}

/// What one partition answered: items newest first, and whether it may hold more.
#[derive(Debug)]
pub struct Chunk<T> {
    pub items: Vec<T>,
    pub more: bool,
}

#[derive(Debug)]
struct Partition<T, K> {
    fetched: VecDeque<T>,
    /// Where the next query resumes: the oldest id fetched so far (or the cursor).
    before: Option<K>,
    more: bool,
}

/// Up to `wanted` items, newest first, from `partitions` partitions each sorted newest first.
/// `fetch(partition, before, limit)` reads up to `limit` items of one partition older than
/// `before`. Returns the items and how many queries it took.
pub async fn merge_newest_first<T, K, E, F, Fut>(
    partitions: usize,
    after: Option<K>,
    wanted: usize,
    key: impl Fn(&T) -> K,
    fetch: F,
) -> Result<(Vec<T>, usize), E>
where
    K: Ord + Copy,
    F: Fn(usize, Option<K>, usize) -> Fut,
    Fut: Future<Output = Result<Chunk<T>, E>>,
{
    let mut parts: Vec<Partition<T, K>> = (0..partitions)
        .map(|_| Partition {
            fetched: VecDeque::new(),
            before: after,
            more: true,
        })
        .collect();
    let mut out = Vec::with_capacity(wanted);
    let mut queries = 0;
    // The first round asks each partition for twice its share and two more. A page's items
    // fall in the partitions as a binomial draw (for 21 over 8 shards: mean 2.6, σ 1.5), and
    // a partition that gives out before the page is full costs a second round trip: at twice
    // the share, about 1 page of 20 in 50 needs one (1 of 100 in 500); at the share plus
    // one, most would.
    let mut limit = (2 * wanted.div_ceil(partitions.max(1)) + 2).min(wanted);
    while out.len() < wanted {
        let needy: Vec<usize> = (0..parts.len())
            .filter(|&i| parts[i].fetched.is_empty() && parts[i].more)
            .collect();
        if !needy.is_empty() {
            let chunks =
                try_join_all(needy.iter().map(|&i| fetch(i, parts[i].before, limit))).await?;
            queries += needy.len();
            for (i, chunk) in needy.into_iter().zip(chunks) {
                let part = &mut parts[i];
                part.more = chunk.more && !chunk.items.is_empty();
                if let Some(last) = chunk.items.last() {
                    part.before = Some(key(last));
                }
                part.fetched.extend(chunk.items);
            }
        }
        let newest = (0..parts.len())
            .filter_map(|i| parts[i].fetched.front().map(|t| (key(t), i)))
            .max_by_key(|(k, _)| *k);
        let Some((newest, i)) = newest else { break };
        if let Some(item) = parts[i].fetched.pop_front() {
            // An item moving between partitions (the migration, or an update of an item written
            // before the sharding) can be in both for a moment: the index applies a key change
            // as a delete and an insert, and the queries read at slightly different times. Its
            // two copies come out one after the other; the second is dropped.
            if out.last().is_none_or(|last| key(last) != newest) {
                out.push(item);
            }
        }
        // Later rounds ask for what the page still lacks: then one refill is always enough.
        limit = wanted - out.len();
    }
    Ok((out, queries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Partitions of plain numbers, sorted newest (largest) first; `cap` stands for the 1 MB
    /// limit (a query returns at most that many, saying there is more).
    struct Fake {
        parts: Vec<Vec<u32>>,
        cap: usize,
        asked: RefCell<Vec<(usize, Option<u32>, usize)>>,
    }

    impl Fake {
        fn new(all: impl IntoIterator<Item = u32>, partitions: usize, cap: usize) -> Self {
            let mut parts = vec![Vec::new(); partitions];
            for n in all {
                parts[(n as usize * 7 + n as usize / 3) % partitions].push(n);
            }
            for p in &mut parts {
                p.sort_unstable_by(|a, b| b.cmp(a));
            }
            Self {
                parts,
                cap,
                asked: RefCell::new(Vec::new()),
            }
        }

        fn skewed(parts: Vec<Vec<u32>>, cap: usize) -> Self {
            Self {
                parts,
                cap,
                asked: RefCell::new(Vec::new()),
            }
        }

        async fn fetch(
            &self,
            i: usize,
            before: Option<u32>,
            limit: usize,
        ) -> Result<Chunk<u32>, ()> {
            self.asked.borrow_mut().push((i, before, limit));
            let older: Vec<u32> = self.parts[i]
                .iter()
                .copied()
                .filter(|n| before.is_none_or(|b| *n < b))
                .collect();
            let take = limit.min(self.cap);
            let more = older.len() > take || (older.len() == take && take > 0);
            Ok(Chunk {
                items: older.into_iter().take(take).collect(),
                more,
            })
        }

        /// One merge over all the partitions: the items and the queries it took.
        async fn merge(&self, after: Option<u32>, wanted: usize) -> (Vec<u32>, usize) {
            merge_newest_first(
                self.parts.len(),
                after,
                wanted,
                |n| *n,
                |i, b, l| self.fetch(i, b, l),
            )
            .await
            .unwrap()
        }

        /// Pages of `size` until the end, as a client walks them with the cursor.
        async fn walk(&self, size: usize) -> Vec<Vec<u32>> {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let (mut items, _) = self.merge(after, size + 1).await;
                let more = items.len() > size;
                items.truncate(size);
                after = items.last().copied();
                pages.push(items);
                if !more {
                    return pages;
                }
            }
        }
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn pages_walk_every_item_once_newest_first_whatever_the_spread() {
        let cases = [
            Fake::new(0..500, 9, 1_000),
            Fake::new(0..500, 9, 3),
            Fake::new(0..7, 9, 1_000),
            Fake::new(std::iter::empty(), 9, 1_000),
            // Everything in one partition (all of it in the unmigrated key, say).
            Fake::skewed(
                vec![vec![], (0..300).rev().collect(), vec![], vec![]],
                1_000,
            ),
            Fake::skewed(vec![(0..300).rev().collect(), vec![1_000]], 7),
        ];
        for fake in cases {
            let mut want: Vec<u32> = fake.parts.iter().flatten().copied().collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            for size in [1, 2, 7, 20, 100] {
                let pages = fake.walk(size).await_blocking();
                let got: Vec<u32> = pages.iter().flatten().copied().collect();
                assert_eq!(got, want, "page size {size}");
                assert!(pages.iter().all(|p| p.len() <= size));
                let full = pages.len() - 1;
                assert!(pages[..full].iter().all(|p| p.len() == size), "short page");
            }
        }
    }

    trait Blocking: Future + Sized {
        fn await_blocking(self) -> Self::Output {
            block(self)
        }
    }
    impl<F: Future> Blocking for F {}

    #[test]
    fn an_even_spread_takes_one_query_per_partition() {
        // 8 shards and the legacy key: a page of 20 (21 asked) over 1,000 items evenly spread.
        let fake = Fake::skewed(
            (0..9u32)
                .map(|p| {
                    (0..1_000u32)
                        .rev()
                        .filter(|n| p < 8 && n % 8 == p)
                        .collect()
                })
                .collect(),
            1_000,
        );
        let (items, queries) = block(fake.merge(None, 21));
        assert_eq!(items, (979..1_000).rev().collect::<Vec<_>>());
        assert_eq!(queries, 9);
        assert!(
            fake.asked.borrow().iter().all(|(_, _, l)| *l == 8),
            "2 × ⌈21/9⌉ + 2"
        );
    }

    #[test]
    fn a_partition_that_runs_out_is_asked_again_before_the_merge_passes_it() {
        let fake = Fake::skewed(vec![(0..50u32).rev().collect(), vec![]], 1_000);
        let (items, queries) = block(fake.merge(Some(40), 21));
        assert_eq!(items, (19..40).rev().collect::<Vec<_>>());
        // 2 first (2 × 11 + 2 = 24, at most the 21 wanted), then nothing more is needed.
        assert_eq!(queries, 2);
        let fake = Fake::skewed(
            vec![(0..50u32).rev().collect(), vec![], vec![], vec![]],
            1_000,
        );
        let (items, queries) = block(fake.merge(Some(40), 21));
        assert_eq!(items, (19..40).rev().collect::<Vec<_>>());
        // 4 first (2 × 6 + 2 = 14 each), then partition 0 once more for the 7 still missing.
        assert_eq!(queries, 5);
        assert_eq!(fake.asked.borrow()[4], (0, Some(26), 7));
    }

    #[test]
    fn an_item_in_two_partitions_at_once_comes_once() {
        let fake = Fake::skewed(vec![vec![9, 7, 5, 3], vec![8, 7, 6], vec![]], 2);
        for size in [1, 2, 3, 10] {
            let got: Vec<u32> = fake
                .walk(size)
                .await_blocking()
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(got, [9, 8, 7, 6, 5, 3], "page size {size}");
        }
    }

    #[test]
    fn a_failed_query_fails_the_page() {
        let failing = |i: usize, _: Option<u32>, _: usize| async move {
            if i == 1 {
                Err("down")
            } else {
                Ok(Chunk {
                    items: vec![1u32],
                    more: false,
                })
            }
        };
        assert_eq!(
            block(merge_newest_first(3, None, 5, |n| *n, failing)),
            Err("down")
        );
    }

    #[test]
    fn the_shard_keys_and_the_keys_read() {
        let id = domain::EpisodeId::parse("019ad3a4-0000-7000-8000-0000000000fd").unwrap();
        assert_eq!(shard_key("episodes", id), "episodes#5");
        assert_eq!(
            read_keys("draft"),
            [
                "draft#0", "draft#1", "draft#2", "draft#3", "draft#4", "draft#5", "draft#6",
                "draft#7", "draft"
            ]
        );
    }
}
