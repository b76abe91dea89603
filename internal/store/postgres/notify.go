package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify implements store.Notifier: it opens a connection of its own (not
// one of the pool, which would go back to the pool still listening), runs
// LISTEN kmsd_changes on it and calls wake for each notification, which
// every transaction that appended changes sends as it commits. PostgreSQL
// may fold the notifications of several commits into one.
//
// wake is also called once as soon as the connection listens: changes
// committed before then, which announced themselves to nobody, are read at
// once rather than at the next poll. Notify returns nil when ctx ends, and
// the error (wrapping its cause) when the connection fails; the caller
// keeps polling meanwhile and may call Notify again.
func (s *Store) Notify(ctx context.Context, wake func()) error {
	if s.tx != nil {
		return errors.New("notify: this Store is bound to a transaction of Update")
	}
	conn, err := pgx.ConnectConfig(ctx, s.connConfig.Copy())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("notify: connect: %w", redact(err, s.secrets))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("notify: listen on %s: %w", notifyChannel, redact(err, s.secrets))
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("notify: wait on %s: %w", notifyChannel, redact(err, s.secrets))
		}
		wake()
	}
}
