package beat

import "errors"

var (
	// ErrCrontab is returned, wrapped with the field name and value, when a
	// crontab field does not parse or names a value outside its range.
	ErrCrontab = errors.New("beat: invalid crontab")

	// ErrNeverMatches is returned when every crontab field is valid on its
	// own but together they name no date that exists, such as
	// day_of_month=31 with month_of_year=2. Celery 5.2.6 accepts such a
	// crontab and raises RuntimeError the first time beat evaluates it.
	ErrNeverMatches = errors.New("beat: crontab never matches")

	// ErrInterval is returned for an interval schedule that is not positive.
	ErrInterval = errors.New("beat: invalid interval")

	// ErrConfig is returned, wrapped with the entry and key at fault, when a
	// beat schedule file is malformed.
	ErrConfig = errors.New("beat: invalid schedule config")

	// ErrState is returned, wrapped with the reason, when a persisted
	// schedule state file is malformed or has an unknown version.
	ErrState = errors.New("beat: invalid schedule state")

	// ErrServiceConfig is returned by NewService, wrapped with the field or
	// entry at fault, for a ServiceConfig it cannot run.
	ErrServiceConfig = errors.New("beat: invalid service config")

	// ErrLeaseLost is returned by Locker.Claim when the caller's token does
	// not hold the lease (it expired or another instance took it): the
	// caller is no longer the leader and must not send.
	ErrLeaseLost = errors.New("beat: lease not held")

	// ErrTickClaimed is returned by Locker.Claim when the entry's recorded
	// tick is at or after the one claimed: that run was already sent (by
	// this or another instance) and must not be sent again.
	ErrTickClaimed = errors.New("beat: tick already claimed")

	// ErrRunning is returned by Service.Run when the service already ran.
	ErrRunning = errors.New("beat: service already ran")
)
