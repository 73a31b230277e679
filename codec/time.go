package codec

import "time"

// AppendISOTime appends t in UTC the way Celery writes eta and expires
// (datetime.isoformat() of an aware UTC datetime):
// "2026-11-24T02:14:43.676182+00:00". Like Python, the fraction is
// microseconds (truncated) and is left out when it is zero
// ("2030-01-03T00:00:00+00:00").
func AppendISOTime(dst []byte, t time.Time) []byte {
	return append(appendNaive(dst, t), "+00:00"...)
}

// AppendDateDone appends t in UTC as a naive ISO-8601 string, the form of
// date_done in result records (datetime.utcnow().isoformat()):
// "2026-11-24T02:14:49.489844", fraction omitted when zero.
func AppendDateDone(dst []byte, t time.Time) []byte {
	return appendNaive(dst, t)
}

func appendNaive(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	dst = append4(dst, year)
	dst = append(dst, '-')
	dst = append2(dst, int(month))
	dst = append(dst, '-')
	dst = append2(dst, day)
	dst = append(dst, 'T')
	dst = append2(dst, hour)
	dst = append(dst, ':')
	dst = append2(dst, minute)
	dst = append(dst, ':')
	dst = append2(dst, sec)
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = append(dst, '.',
			byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
			byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
	}
	return dst
}

func append2(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/10%10), byte('0'+v%10))
}

func append4(dst []byte, v int) []byte {
	if v < 0 || v > 9999 {
		// Outside Python's datetime range; write something parseable-looking
		// rather than garbage digits.
		v = max(0, min(v, 9999))
	}
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// ParseISOTime parses the ISO-8601 subset Celery's worker accepts
// (celery.utils.iso8601):
//
//	YYYY-MM-DD[<sep>hh:mm[:ss[.fraction]][Z|±hh:mm]]
//
// where <sep> is any single character (normally 'T'), month and day may
// have one or two digits, and a time without a zone is UTC (Celery's
// default timezone). The result is always in UTC. Fractions are read as
// decimal fractions to nanosecond precision. It does not allocate.
//
// Errors wrap ErrSyntax (bad shape) or ErrBadValue (out-of-range field).
func ParseISOTime(b []byte) (time.Time, error) {
	p := isoParser{b: b, ok: true}
	year := p.digits(4, 4)
	p.lit('-')
	month := p.digits(1, 2)
	p.lit('-')
	day := p.digits(1, 2)
	var hour, minute, sec, nsec, offset int
	if p.ok && p.i < len(b) {
		p.i++ // separator: any character, as in Celery's regex
		hour = p.digits(2, 2)
		p.lit(':')
		minute = p.digits(2, 2)
		if p.ok && p.i < len(b) && b[p.i] == ':' {
			p.i++
			sec = p.digits(2, 2)
			if p.ok && p.i < len(b) && b[p.i] == '.' {
				p.i++
				nsec = p.fraction()
			}
		}
		if p.ok && p.i < len(b) {
			switch b[p.i] {
			case 'Z':
				p.i++
			case '+', '-':
				sign := 1
				if b[p.i] == '-' {
					sign = -1
				}
				p.i++
				oh := p.digits(2, 2)
				p.lit(':')
				om := p.digits(2, 2)
				if oh > 23 || om > 59 {
					return time.Time{}, timeError(ErrBadValue, "zone offset out of range")
				}
				offset = sign * (oh*3600 + om*60)
			default:
				p.ok = false
			}
		}
	}
	if !p.ok || p.i != len(b) {
		return time.Time{}, timeError(ErrSyntax, "want YYYY-MM-DD[Thh:mm[:ss[.ffffff]][Z|±hh:mm]]")
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 || year < 1 {
		return time.Time{}, timeError(ErrBadValue, "date or time field out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
		if y := t.Year(); y < 1 || y > 9999 {
			return time.Time{}, timeError(ErrBadValue, "outside years 1-9999 in UTC")
		}
	}
	return t, nil
}

func timeError(err error, detail string) error {
	return &DecodeError{Part: "time", Err: err, Detail: detail}
}

type isoParser struct {
	b  []byte
	i  int
	ok bool
}

// digits reads between lo and hi decimal digits.
func (p *isoParser) digits(lo, hi int) int {
	if !p.ok {
		return 0
	}
	v, n := 0, 0
	for n < hi && p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		v = v*10 + int(p.b[p.i]-'0')
		p.i++
		n++
	}
	if n < lo {
		p.ok = false
	}
	return v
}

func (p *isoParser) lit(c byte) {
	if !p.ok {
		return
	}
	if p.i >= len(p.b) || p.b[p.i] != c {
		p.ok = false
		return
	}
	p.i++
}

// fraction reads one or more digits as a decimal fraction in nanoseconds;
// digits beyond the ninth are ignored.
func (p *isoParser) fraction() int {
	ns, scale, n := 0, 100000000, 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		ns += int(p.b[p.i]-'0') * scale
		scale /= 10
		p.i++
		n++
	}
	if n == 0 {
		p.ok = false
	}
	return ns
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
