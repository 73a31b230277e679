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
)
