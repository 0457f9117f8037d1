package flows

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/safeflow/safeflow/flows/diag"
)

// VersionStore keeps every flow version served, by content hash, so that a
// conversation in flight keeps its definition across reloads and nodes.
type VersionStore interface {
	SaveFlowVersion(ctx context.Context, id, hash, file string, src []byte) error
	// LoadFlowVersion returns a version's file name and source, or an error
	// when the hash is unknown.
	LoadFlowVersion(ctx context.Context, hash string) (file string, src []byte, err error)
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied is true when the new set replaced the old one.
	Applied bool
	Diags   diag.List
	Files   int
	Err     error
}

// Registry serves the current set of flows from a folder and swaps in a new
// set atomically when the files change. A set with errors never replaces a
// good one: the last good set keeps serving and the errors are reported.
type Registry struct {
	dir      string
	versions VersionStore
	onReload func(ReloadResult)

	mu    sync.RWMutex
	set   *Set
	byVer map[string]*Flow // content hash → flow, every version seen
}

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// WithVersionStore keeps flow versions in a shared store.
func WithVersionStore(v VersionStore) RegistryOption {
	return func(r *Registry) { r.versions = v }
}

// WithReloadHook is called after every reload attempt.
func WithReloadHook(fn func(ReloadResult)) RegistryOption {
	return func(r *Registry) { r.onReload = fn }
}

// ErrInvalidFlows is returned when flow files have errors.
var ErrInvalidFlows = errors.New("the flow files have errors")

// NewRegistry loads the flows of a folder. It fails when the folder cannot
// be read or any flow has errors: a service must not start on broken flows.
func NewRegistry(ctx context.Context, dir string, opts ...RegistryOption) (*Registry, diag.List, error) {
	r := &Registry{dir: dir, byVer: map[string]*Flow{}}
	for _, o := range opts {
		o(r)
	}
	res := r.Reload(ctx)
	if res.Err != nil {
		return nil, res.Diags, res.Err
	}
	return r, res.Diags, nil
}

// Reload reads the folder again and swaps in the new set if it is valid.
func (r *Registry) Reload(ctx context.Context) ReloadResult {
	res := r.reload(ctx)
	if r.onReload != nil {
		r.onReload(res)
	}
	return res
}

func (r *Registry) reload(ctx context.Context) ReloadResult {
	files, err := FindFiles([]string{r.dir}, IsFlowFile)
	if err != nil {
		return ReloadResult{Err: err}
	}
	set, err := LoadFiles(files)
	if err != nil {
		return ReloadResult{Err: err, Files: len(files)}
	}
	res := ReloadResult{Diags: set.Diags, Files: len(files)}
	if set.Diags.Errors() > 0 {
		res.Err = fmt.Errorf("%w: %w", ErrInvalidFlows, set.Diags.Err())
		return res
	}
	for _, f := range set.Flows {
		if r.versions != nil {
			if err := r.versions.SaveFlowVersion(ctx, f.ID, f.Hash, f.File, f.Source); err != nil {
				res.Err = fmt.Errorf("save flow version %s: %w", f.ID, err)
				return res
			}
		}
	}
	r.mu.Lock()
	r.set = set
	for _, f := range set.Flows {
		r.byVer[f.Hash] = f
	}
	r.mu.Unlock()
	res.Applied = true
	return res
}

// Current returns the set being served.
func (r *Registry) Current() *Set {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.set
}

// Flow returns the current version of a flow, or nil.
func (r *Registry) Flow(id string) *Flow { return r.Current().Flow(id) }

// ByKeyword returns the flow a trigger keyword starts, or nil.
func (r *Registry) ByKeyword(word string) *Flow { return r.Current().ByKeyword(word) }

// Default returns the flow that starts for a new contact, or nil.
func (r *Registry) Default() *Flow { return r.Current().Default() }

// Version returns a flow version by content hash: from memory, or from the
// version store when another node loaded it.
func (r *Registry) Version(id, hash string) *Flow {
	r.mu.RLock()
	f := r.byVer[hash]
	r.mu.RUnlock()
	if f != nil || r.versions == nil {
		return f
	}
	file, src, err := r.versions.LoadFlowVersion(context.Background(), hash)
	if err != nil {
		return nil
	}
	f, d := Parse(file, src)
	if d.Errors() > 0 || f.ID != id {
		return nil
	}
	r.mu.Lock()
	r.byVer[hash] = f
	r.mu.Unlock()
	return f
}

// Watch reloads the flows whenever a file in the folder changes, until ctx
// ends. Bursts of changes (an editor saving) are folded into one reload.
func (r *Registry) Watch(ctx context.Context, debounce time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch flows: %w", err)
	}
	defer w.Close()
	if err := r.watchTree(w); err != nil {
		return err
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = w.Add(ev.Name)
				}
			}
			if IsFlowFile(ev.Name) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				timer = time.After(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if r.onReload != nil {
				r.onReload(ReloadResult{Err: fmt.Errorf("watch flows: %w", err)})
			}
		case <-timer:
			timer = nil
			r.Reload(ctx)
		}
	}
}

func (r *Registry) watchTree(w *fsnotify.Watcher) error {
	return filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if err := w.Add(path); err != nil {
				return fmt.Errorf("watch %s: %w", path, err)
			}
		}
		return nil
	})
}
