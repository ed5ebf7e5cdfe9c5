//! Which scheduled archives to keep: the newest of each of the last `keep_daily` days that have
//! one, and the newest of each of the last `keep_weekly` weeks (Monday to Sunday, UTC) that have
//! one. The newest archive is always kept.

use super::BackupKey;

/// How many daily and weekly scheduled archives to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days (that have a backup) whose newest archive is kept.
    pub keep_daily: usize,
    /// Weeks (that have a backup) whose newest archive is kept.
    pub keep_weekly: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

impl RetentionPolicy {
    /// The archives of `backups` (name, Unix seconds) this policy does not keep.
    pub fn prunable(&self, backups: &[(BackupKey, i64)]) -> Vec<BackupKey> {
        let mut sorted: Vec<&(BackupKey, i64)> = backups.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut keep = vec![false; sorted.len()];
        if let Some(first) = keep.first_mut() {
            *first = true;
        }
        let day = |t: i64| t.div_euclid(86_400);
        // 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
        let week = |t: i64| (day(t) + 3).div_euclid(7);
        for (bucket, limit) in [
            (&day as &dyn Fn(i64) -> i64, self.keep_daily),
            (&week, self.keep_weekly),
        ] {
            let mut seen: Vec<i64> = Vec::new();
            for (i, (_, t)) in sorted.iter().enumerate() {
                let b = bucket(*t);
                if seen.contains(&b) {
                    continue;
                }
                if seen.len() == limit {
                    break;
                }
                seen.push(b);
                keep[i] = true;
            }
        }
        sorted
            .iter()
            .zip(keep)
            .filter(|(_, k)| !k)
            .map(|(b, _)| b.0.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> BackupKey {
        BackupKey::parse_stored(&format!("@auto_b{i}.tar.zst")).unwrap()
    }

    #[test]
    fn thirty_days_of_backups_keep_seven_days_and_four_weeks() {
        // One backup a day at 03:00 for 60 days, starting on a Monday (1970-01-05).
        let start = 4 * 86_400 + 3 * 3600;
        let backups: Vec<_> = (0..60)
            .map(|i| (key(i), start + i as i64 * 86_400))
            .collect();
        let pruned = RetentionPolicy::default().prunable(&backups);
        let kept: Vec<_> = backups
            .iter()
            .filter(|(k, _)| !pruned.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        // Days 53..=59 (the last seven), then the newest of each earlier week: the week holding
        // day 59 (days 56..=62) is already kept by day 59, so weeks end at days 55, 48, 41.
        let expected: Vec<_> = [59, 58, 57, 56, 55, 54, 53, 48, 41]
            .iter()
            .map(|&i| key(i))
            .collect();
        let mut kept_sorted = kept.clone();
        kept_sorted.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(kept_sorted, expected_sorted);
    }

    #[test]
    fn several_backups_a_day_keep_the_newest_of_each_day() {
        let backups = vec![(key(1), 100), (key(2), 200), (key(3), 86_400 + 5)];
        let pruned = RetentionPolicy {
            keep_daily: 7,
            keep_weekly: 0,
        }
        .prunable(&backups);
        assert_eq!(pruned, vec![key(1)]);
    }

    #[test]
    fn the_newest_is_kept_even_with_zero_limits() {
        let backups = vec![(key(1), 100), (key(2), 200)];
        let pruned = RetentionPolicy {
            keep_daily: 0,
            keep_weekly: 0,
        }
        .prunable(&backups);
        assert_eq!(pruned, vec![key(1)]);
    }
}
