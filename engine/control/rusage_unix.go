//go:build unix

package control

import "syscall"

// rusage is the getrusage(RUSAGE_SELF) report of Celery's stats.
func rusage() any {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return "N/A"
	}
	tv := func(t syscall.Timeval) pyFloat { return pyFloat(float64(t.Sec) + float64(t.Usec)/1e6) }
	return map[string]any{
		"utime": tv(ru.Utime), "stime": tv(ru.Stime), "maxrss": ru.Maxrss, "ixrss": ru.Ixrss,
		"idrss": ru.Idrss, "isrss": ru.Isrss, "minflt": ru.Minflt, "majflt": ru.Majflt, "nswap": ru.Nswap,
		"inblock": ru.Inblock, "oublock": ru.Oublock, "msgsnd": ru.Msgsnd, "msgrcv": ru.Msgrcv,
		"nsignals": ru.Nsignals, "nvcsw": ru.Nvcsw, "nivcsw": ru.Nivcsw,
	}
}
