package cli

import (
	"context"
	"fmt"

	"github.com/celerity-go/celerity/engine/control"
)

// runStatus is `celerity status`: the workers that answer a ping.
func runStatus(ctx context.Context, args []string, o Options) error {
	fs := newFlags("status", "[flags]", o)
	var rf remoteFlags
	rf.register(fs, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return errUsage
	}
	r, err := rf.open(ctx, o)
	if err != nil {
		return err
	}
	defer r.Close()
	call := rf.call("ping", nil)
	if !rf.json {
		call.OnReply = func(rep control.Reply) { sayReply(o.Stdout, rep, false) }
	}
	replies, err := r.client.Call(ctx, call)
	if err != nil {
		return err
	}
	if len(replies) == 0 {
		return control.ErrNoReply
	}
	if rf.json {
		if err := printJSONReplies(o.Stdout, replies, false); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Stdout, "\n%s online.\n", nodes(len(replies)))
	return nil
}
