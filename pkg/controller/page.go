package controller

import (
	"errors"
	"fmt"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// lister is the engine's List of one kind: up to max (0: all) records in
// id order from token, and the token of the next page, "" after the last.
type lister func(token string, max int) ([]*thinpool.Volume, string, error)

// lister is the engine's List of kind; a token the engine did not give
// fails with its ErrInvalidToken (ABORTED), saying what the caller does
// next.
func (s *Server) lister(kind thinpool.Kind) lister {
	return func(token string, max int) ([]*thinpool.Volume, string, error) {
		recs, next, err := s.engine.List(kind, token, max)
		if errors.Is(err, thinpool.ErrInvalidToken) {
			err = fmt.Errorf("starting_token: %w: list again from the start, without a starting_token", err)
		}
		return recs, next, err
	}
}

// minBatch is the fewest records page asks the engine for at once, so that
// a sparse filter does not take a call per record.
const minBatch = 256

// page pages through records from token, converting each with keep and
// keeping those it accepts, until max are kept (0: all). next is the id of
// the record after the last one kept, where the following page starts, or
// "" when no record is left. The tokens are the engine's, so a token it
// did not give fails with its ErrInvalidToken.
func page[T any](list lister, token string, max int, keep func(*thinpool.Volume) (T, bool, error)) ([]T, string, error) {
	batch := max
	if max > 0 && batch < minBatch {
		batch = minBatch
	}
	var out []T
	for {
		recs, next, err := list(token, batch)
		if err != nil {
			return nil, "", err
		}
		for i, v := range recs {
			t, ok, err := keep(v)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				continue
			}
			out = append(out, t)
			if max > 0 && len(out) == max {
				if i+1 < len(recs) {
					return out, recs[i+1].ID, nil
				}
				return out, next, nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		token = next
	}
}
