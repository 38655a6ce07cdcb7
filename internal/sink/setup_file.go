package sink

import "os"

// StdoutSettings are a stdout sink's own settings: none beyond the common
// ones (format, min_importance, spool).
type StdoutSettings struct{}

// FileSettings are a file sink's own settings:
//
//	sink "file" "NAME" { path = "/ABS/PATH"  mode = "0600"  sync = false }
type FileSettings struct {
	Path string      // the file to append to
	Mode os.FileMode // permission of a created file; 0 means 0600
	Sync bool        // fsync after every batch
}

func init() {
	Register(Kind[StdoutSettings]{
		Name:       "stdout",
		FormatAttr: "format",
		Decode:     func(*Body, *StdoutSettings) {},
		New: func(_ *StdoutSettings, env Env) (Sink, error) {
			return NewStdout(env.Name, nil, env.Format), nil
		},
	})
	Register(Kind[FileSettings]{
		Name:       "file",
		FormatAttr: "format",
		Decode: func(b *Body, s *FileSettings) {
			b.Require("path")
			b.AbsPath("path", &s.Path)
			b.FileMode("mode", &s.Mode)
			b.Bool("sync", &s.Sync)
		},
		New: func(s *FileSettings, env Env) (Sink, error) {
			return NewFile(env.Log, env.Name, s.Path, FileOptions{Mode: s.Mode, Sync: s.Sync, Format: env.Format})
		},
	})
}
