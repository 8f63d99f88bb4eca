//! Migration windows: the weekly hours, in a customer's own time zone, in which
//! its released machines may start migrating. Times are wall-clock times of the
//! zone (IANA, from `chrono-tz`): a window from 22:00 to 06:00 is that on every
//! day, however long the night is when daylight-saving time begins or ends.

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

/// A weekly window: on each of `days`, from `start` to `end` (local time in
/// `time_zone`). An `end` not after `start` runs past midnight: a window of
/// Friday 22:00-06:00 ends on Saturday morning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub time_zone: Tz,
}

impl Window {
    /// Whether a machine may start migrating at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.time_zone).naive_local();
        let (day, time) = (local.date(), local.time());
        if self.end > self.start {
            return self.days.contains(&day.weekday()) && self.start <= time && time < self.end;
        }
        // Past midnight: the evening of a day of the window, or the morning after one.
        let yesterday = day.pred_opt().map(|d| d.weekday());
        (self.days.contains(&day.weekday()) && time >= self.start)
            || (yesterday.is_some_and(|d| self.days.contains(&d)) && time < self.end)
    }

    /// The first opening after `after` (none when the window has no day).
    pub fn next_opening(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = after.with_timezone(&self.time_zone).date_naive();
        // Eight days ahead reach every weekday's next opening, whatever the offset.
        (0..=8)
            .filter_map(|n| today.checked_add_days(Days::new(n)))
            .filter(|day| self.days.contains(&day.weekday()))
            .map(|day| self.instant(day, self.start))
            .find(|opening| *opening > after)
    }

    /// The instant of a local time: the earlier of two (the hour repeated when
    /// daylight-saving time ends), and a time skipped when it begins moves
    /// forward to the first quarter hour that exists (03:00 for a 02:30 skipped).
    fn instant(&self, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = day.and_time(time);
        // Offsets change by at most a few hours: 16 quarter hours find an existing time.
        for _ in 0..16 {
            match self.time_zone.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc);
                }
                LocalResult::None => {
                    let next = local + chrono::Duration::minutes(15);
                    local = next
                        .date()
                        .and_hms_opt(next.hour(), next.minute() / 15 * 15, 0)
                        .unwrap_or(next);
                }
            }
        }
        Utc.from_utc_datetime(&local)
    }
}

/// A machine's windows: it may start when any of them is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Windows(pub Vec<Window>);

impl Windows {
    /// Open at `at`: no windows at all is always open.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.0.is_empty() || self.0.iter().any(|w| w.is_open(at))
    }

    /// The first opening of any window after `after`.
    pub fn next_opening(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.iter().filter_map(|w| w.next_opening(after)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Weekday::*;

    fn window(days: &[Weekday], start: &str, end: &str, zone: &str) -> Window {
        Window {
            days: days.to_vec(),
            start: start.parse().expect("a time"),
            end: end.parse().expect("a time"),
            time_zone: zone.parse().expect("an IANA zone"),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 instant")
    }

    #[test]
    fn a_window_is_open_from_its_start_to_its_end_on_its_days_in_its_zone() {
        // Berlin is UTC+1 in January: 18:00-22:00 local is 17:00-21:00 UTC.
        let w = window(&[Mon, Wed], "18:00", "22:00", "Europe/Berlin");
        for (at, open) in [
            ("2027-01-04T16:59:59Z", false), // Monday 17:59:59 local
            ("2027-01-04T17:00:00Z", true),  // Monday 18:00 local: the start is in
            ("2027-01-04T20:59:59Z", true),
            ("2027-01-04T21:00:00Z", false), // 22:00 local: the end is out
            ("2027-01-05T17:30:00Z", false), // a Tuesday
            ("2027-01-06T18:00:00Z", true),  // Wednesday 19:00 local
        ] {
            assert_eq!(w.is_open(utc(at)), open, "{at}");
        }
        assert_eq!(
            w.next_opening(utc("2027-01-04T21:00:00Z")),
            Some(utc("2027-01-06T17:00:00Z")),
            "after Monday's window, Wednesday's"
        );
        assert_eq!(
            w.next_opening(utc("2027-01-06T21:00:00Z")),
            Some(utc("2027-01-11T17:00:00Z")),
            "after Wednesday's, next Monday's"
        );
    }

    #[test]
    fn a_window_past_midnight_ends_the_next_morning() {
        let w = window(&[Fri], "22:00", "06:00", "America/New_York");
        // New York is UTC-5 in January.
        for (at, open) in [
            ("2027-01-09T02:59:00Z", false), // Friday 21:59
            ("2027-01-09T03:00:00Z", true),  // Friday 22:00
            ("2027-01-09T10:59:00Z", true),  // Saturday 05:59
            ("2027-01-09T11:00:00Z", false), // Saturday 06:00
            ("2027-01-10T03:00:00Z", false), // Saturday 22:00: not a day of the window
            ("2027-01-08T10:00:00Z", false), // Friday 05:00: Thursday was not a day of it
        ] {
            assert_eq!(w.is_open(utc(at)), open, "{at}");
        }
    }

    #[test]
    fn daylight_saving_changes_move_the_window_in_utc_not_in_local_time() {
        // Europe/Berlin: UTC+1 until Sunday 2027-03-28 02:00, then UTC+2 (02:00-03:00 skipped).
        let evening = window(&[Sat, Sun, Mon], "20:00", "23:00", "Europe/Berlin");
        assert_eq!(
            evening.next_opening(utc("2027-03-27T12:00:00Z")),
            Some(utc("2027-03-27T19:00:00Z")),
            "Saturday 20:00 at UTC+1"
        );
        assert_eq!(
            evening.next_opening(utc("2027-03-27T22:00:00Z")),
            Some(utc("2027-03-28T18:00:00Z")),
            "Sunday 20:00 at UTC+2"
        );
        assert!(evening.is_open(utc("2027-03-28T18:30:00Z")));
        assert!(!evening.is_open(utc("2027-03-28T21:30:00Z")), "23:30 local");
        // A night window across the change is an hour shorter in real time: 22:00-06:00 local.
        let night = window(&[Sat], "22:00", "06:00", "Europe/Berlin");
        assert!(night.is_open(utc("2027-03-27T21:00:00Z")), "22:00 at UTC+1");
        assert!(night.is_open(utc("2027-03-28T03:59:00Z")), "05:59 at UTC+2");
        assert!(
            !night.is_open(utc("2027-03-28T04:00:00Z")),
            "06:00 at UTC+2"
        );
        // A start skipped by the change opens when local time exists again.
        let skipped = window(&[Sun], "02:30", "04:00", "Europe/Berlin");
        assert_eq!(
            skipped.next_opening(utc("2027-03-27T00:00:00Z")),
            Some(utc("2027-03-28T01:00:00Z")),
            "03:00 at UTC+2"
        );
        assert!(skipped.is_open(utc("2027-03-28T01:00:00Z")));
        // The hour repeated in autumn (2027-10-31, 03:00 back to 02:00): the first 02:30.
        assert_eq!(
            skipped.next_opening(utc("2027-10-30T00:00:00Z")),
            Some(utc("2027-10-31T00:30:00Z")),
            "02:30 at UTC+2, the earlier of the two"
        );
    }

    #[test]
    fn several_windows_open_when_any_does_and_none_is_always_open() {
        let windows = Windows(vec![
            window(&[Mon], "09:00", "10:00", "Asia/Tokyo"),
            window(&[Mon], "09:00", "10:00", "Europe/London"),
        ]);
        // Monday 09:30 in Tokyo is Monday 00:30 UTC; in London (UTC+0 in January) 09:30 UTC.
        assert!(windows.is_open(utc("2027-01-04T00:30:00Z")));
        assert!(windows.is_open(utc("2027-01-04T09:30:00Z")));
        assert!(!windows.is_open(utc("2027-01-04T05:00:00Z")));
        assert_eq!(
            windows.next_opening(utc("2027-01-04T05:00:00Z")),
            Some(utc("2027-01-04T09:00:00Z"))
        );
        assert!(Windows::default().is_open(utc("2027-01-04T05:00:00Z")));
        assert_eq!(
            Windows::default().next_opening(utc("2027-01-04T05:00:00Z")),
            None
        );
        let never = window(&[], "09:00", "10:00", "UTC");
        assert!(!never.is_open(utc("2027-01-04T09:30:00Z")));
        assert_eq!(never.next_opening(utc("2027-01-04T05:00:00Z")), None);
    }
}
