package pool

// Solo runs every job in the goroutine that submits it, one after another,
// like Celery's solo pool. It has one slot. It is not safe for concurrent
// use: the worker's consumer loop owns it.
type Solo[J any] struct {
	run  func(*Slot, J)
	idle func(*Slot)
	slot Slot
}

// NewSolo returns a solo pool; run, idle and init mean what they mean for
// NewGoroutine (idle is called after each submitted batch).
func NewSolo[J any](run func(*Slot, J), idle, init func(*Slot)) *Solo[J] {
	p := &Solo[J]{run: run, idle: idle, slot: Slot{ID: 1}}
	if init != nil {
		init(&p.slot)
	}
	return p
}

// Submit runs jobs now, in order, then calls idle.
func (p *Solo[J]) Submit(jobs ...J) error {
	for _, j := range jobs {
		p.run(&p.slot, j)
		p.slot.Tasks++
	}
	if p.idle != nil {
		p.idle(&p.slot)
	}
	return nil
}
