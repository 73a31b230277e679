// Package beat is celerity's beat: Celery's interval and crontab
// schedules, schedule entries defined in Go or loaded from a config file
// in the shape of Celery's beat_schedule setting, the persisted "last run"
// state with its catch-up policy, and Service, the loop that sends each
// entry's task when it is due, with a lease so that several instances can
// run without sending a run twice.
//
// The scheduling core (schedules, entries, state) has no clock, broker or
// goroutines of its own: every decision takes now as an argument, so the
// Service loop (and a test with a fake clock) drives it.
//
// # Schedules
//
// A Schedule answers two questions, in Celery's terms: IsDue(lastRun, now)
// returns whether a run is due and how long to wait before asking again
// (Celery's is_due contract, with a time.Duration for its seconds), and
// Next(after) returns the first run time after a given instant.
//
// Interval is Celery's schedule(run_every): due once Every has passed since
// the last run, optionally relative (run times rounded down to the
// interval's resolution).
//
// Crontab is Celery's crontab(minute, hour, day_of_week, day_of_month,
// month_of_year) with Celery's syntax (ParseCrontab): "*", "n", "a-b",
// "*/15", "9-17/4" (9, 13, 17), lists, wrapping ranges ("fri-mon"), day
// names in day_of_week with Sunday = 0 (7 is rejected, as in Celery). All
// five fields must match: unlike Unix cron, day_of_week and day_of_month
// are ANDed, so day_of_month="1-7", day_of_week="mon" is the first Monday
// of the month. A crontab is evaluated in the location of Celery's
// timezone/enable_utc settings (Location), UTC by default.
//
// # Daylight-saving time
//
// A crontab walks the wall clock of its location forward minute by minute
// (in effect), and runs at the instants those wall-clock minutes occur:
//
//   - A wall-clock time skipped by a forward jump (02:30 on the night
//     Europe/Berlin goes from 02:00 CET to 03:00 CEST) runs once, at the
//     instant of the jump (03:00 CEST). Several skipped times of one jump
//     collapse into that one run. Celery 5.2.6 also runs it after the jump:
//     is_due is true from 03:00 CEST on, so beat sends it at its next
//     wake-up (within beat_max_loop_interval, 5 minutes by default).
//   - A wall-clock time that occurs twice (02:30 on the night Berlin goes
//     from 03:00 CEST back to 02:00 CET) runs once, at its first
//     occurrence. Once the wall clock has passed a time it does not run it
//     again when the clock is set back: an every-15-minutes crontab runs
//     02:00, 02:15, 02:30, 02:45 CEST and then 03:00 CET. Celery 5.2.6
//     decides the same (checked against it in the tests), though its "next
//     check" hint near the change can be an hour off; ours is exact. If the
//     last run was itself in the repeated hour's second pass, the following
//     times in that pass do run, as in Celery.
//
// Intervals measure elapsed time between instants and ignore wall clocks.
//
// # Entries, config and state
//
// An Entry is Celery's ScheduleEntry: name, task, Schedule, JSON args and
// kwargs, apply_async Options, LastRunAt and TotalRunCount.
// ParseConfigJSON, ParseConfigYAML and LoadConfigFile read entries from a
// file shaped like beat_schedule.
//
// State holds the last run of each entry; WriteStateFile saves it
// atomically (temporary file, fsync, rename, directory fsync) and
// ReadStateFile loads it. Catch-up policy, applied by State.Restore and
// the IsDue contract:
//
//   - An entry with a persisted last run whose scheduled time passed while
//     beat was down is due at once and fires once, not once per missed run;
//     the beat loop then records now as its last run (Entry.Advance), so
//     the next run is the first scheduled time after now. This is
//     Celery's behaviour: its beat sets last_run_at to the send time.
//   - A new entry (no persisted state) starts with LastRunAt = now, as in
//     Celery: an interval entry first runs Every after start, a crontab
//     entry at its next scheduled time, never immediately.
//   - If the timezone changed since the state was saved, the state is
//     discarded and every entry starts as new (Celery resets its schedule
//     file on a timezone change).
//   - A persisted last run in the future (the clock was set back) is kept:
//     the entry waits until its run after that time, as in Celery.
//
// # Differences from Celery 5.2.6
//
// Deliberate, each covered by a test:
//
//   - Missed crontab runs are always caught up once. Celery's
//     remaining_delta only looks at the rest of the last run's hour when
//     the last run is on the same date as now, so after a restart on a
//     later date a run missed late on the last run's date is skipped:
//     hour="8-20", minute="*/15", last run 20:10, beat down until 01:00 the
//     next day: Celery does not send the 20:15 run, celerity sends it once.
//   - With day_of_month or month_of_year set, Celery compares candidate
//     days against the last run using midnight UTC, so in zones west of UTC
//     a last run in the evening skips ahead by up to a month (New York,
//     day_of_month="1-31", hour=0, minute=0, last run 20:30 on May 10:
//     Celery's next run is June 1, ours May 11). This is celery/celery
//     issue 8052, fixed after 5.2.6 by pull request 8053.
//   - A crontab that names no existing date (day_of_month=31,
//     month_of_year=2) is rejected by ParseCrontab with ErrNeverMatches;
//     Celery accepts it and raises RuntimeError when beat evaluates it.
//   - The crontab grammar is stricter where Celery's regular expressions
//     silently ignore trailing text: "1-5/2/3", "1-2-3" and "*/5/7" are
//     errors (Celery reads 1-5/2, 1-2 and */5). Numbers are ASCII digits
//     ("+5", "1_0" and non-ASCII digits are errors). Day names are only
//     accepted in day_of_week (Celery also takes minute="mon" as 1) and
//     must be a day name or a prefix of one of at least three letters
//     ("tue", "tues", "Tuesday"; Celery takes anything whose first three
//     letters name a day, such as "sundae"). Spaces around list parts are
//     ignored everywhere (Celery rejects " 1-5").
//   - Interval: run_every must be positive (Celery's 0 makes beat send on
//     every loop iteration), and it is measured in elapsed time across a
//     daylight-saving change (Celery adds it to the wall clock there).
//   - The one-string form "m h dom moy dow" (ParseCrontabString) is that
//     of crontab.from_string, added to Celery after 5.2.6 (pull request
//     8250); 5.2.6 has none.
//   - Solar schedules are not implemented: Celery needs the optional ephem
//     package for them (not installed with Debian's Celery either), and a
//     config entry using one is an error.
//
// # The service
//
// NewService takes a Sender (the *engine.App) and a ServiceConfig: the
// entries, the state file, the Locker and the timings. Service.Run loops:
//
//  1. Take the lease, or renew it when a third of LeaseTTL has passed. A
//     standby (the lease is someone else's) tries again every
//     RetryInterval and sends nothing.
//  2. On taking the lease, load the Locker's records and adopt, per
//     entry, a record whose last run is later than the entry's own; give
//     entries with no record one (tick = last run), so that a successor
//     schedules from the same point.
//  3. For each due entry, claim its run: the tick is the run's
//     scheduled time, Schedule.Next(LastRunAt), and the claim records it
//     with the new last run (now) in the Locker. Then write the state
//     file, then send the claimed runs with app.SendRaw, mapping the
//     entry's Options to engine options (queue, exchange, routing_key,
//     priority 0-9, expires, time_limit, soft_time_limit, serializer,
//     compression, headers) and the task id TaskID(entry, task, tick).
//  4. Sleep until the earliest of: the next due entry, the lease renewal,
//     MaxInterval (Celery's beat_max_loop_interval). There is no polling
//     in between.
//
// Each Locker call is bounded by LeaseTTL; a failed one is logged and
// retried after RetryInterval, and nothing is sent without a claim.
//
// Runs are claimed before they are sent, in the Locker and in the state
// file: a crash or a failed send between the claim and the send loses
// that run (it is logged), it never repeats it. A send that the broker
// refuses is logged and, as in Celery, not retried.
//
// # Lease and de-duplication
//
// A Locker (RedisLocker on the broker's Redis, MemoryLocker in one
// process) holds two things: a lease with an expiry, held by at most one
// instance's token, and per entry a Record of the last claimed run: its
// tick, last run time and run count. Claim is atomic: it succeeds only if
// the caller's token holds the lease and the tick is later than the
// recorded one. Hence:
//
//   - Two instances never send the same run: the second claim of a tick
//     fails (ErrTickClaimed), and ticks of an entry only grow.
//   - A leader that lost its lease without noticing (paused, cut off
//     from Redis, its renewal late) cannot claim (ErrLeaseLost): it steps
//     down and sends nothing more, even if it still thinks it leads.
//   - The new leader continues from the records: the runs of an entry
//     form one sequence whichever instance sends them, and a run sent by
//     the old leader is never sent again by the new one.
//
// Hand-over: a leader that stops releases the lease, and a standby takes
// it within RetryInterval. A leader that dies keeps it until it expires,
// at most LeaseTTL after its last renewal; runs that fell due meanwhile
// are sent once, at once, by the new leader (the catch-up policy above),
// so with LeaseTTL + RetryInterval no longer than an entry's interval no
// run of it is skipped, only delayed. The task id being a function of the entry, the
// task and the tick, a run has the same id whichever instance sends it.
// Lease expiry uses the Redis server's clock; ticks and last runs use
// the leader's, so instances should keep their clocks in sync (a leader
// whose clock lags waits longer, it does not send twice).
//
// The records carry absolute times, so the timezone reset of the state
// file does not apply to them: when they are later than the local state
// they win.
//
// # Shutdown
//
// Cancelling Run's context is a soft stop: the runs being claimed and
// sent in the current iteration are sent, then Run writes the state file
// and releases the lease (bounded by 2 seconds), in that order, and
// returns. Terminate is a hard stop: it also cancels the send or Locker
// call in flight (a claimed run may then be lost, never sent twice), and
// Run then saves and releases the same way. A standby that never led
// writes nothing.
//
// # Concurrency
//
// Interval and Crontab are immutable and safe for concurrent use. Entry
// and State are plain data owned by one goroutine, normally the beat loop.
// A Service's entries belong to its Run goroutine; IsLeader, State and
// Terminate are safe to call from others. MemoryLocker and RedisLocker
// are safe for concurrent use.
package beat
