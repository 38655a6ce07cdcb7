package sink

import (
	"bytes"
	"encoding/gob"
	"fmt"

	"github.com/encwatch/encwatch/detect"
)

// encodeAlert appends the spool encoding of a to dst. It is encoding/gob of
// the alert, one self-contained gob stream per record, because gob keeps
// every string byte-exact: argv may be any bytes, and encoding/json would
// replace invalid UTF-8. A self-contained stream costs a few hundred bytes
// of type description per record but lets any record be decoded alone, so a
// damaged record never takes its neighbours with it.
func encodeAlert(dst *bytes.Buffer, a *detect.Alert) error {
	if err := gob.NewEncoder(dst).Encode(a); err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	return nil
}

// decodeAlert is the inverse of encodeAlert.
func decodeAlert(b []byte) (detect.Alert, error) {
	var a detect.Alert
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&a); err != nil {
		return detect.Alert{}, fmt.Errorf("decode alert: %w", err)
	}
	return a, nil
}
