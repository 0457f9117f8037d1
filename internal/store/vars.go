package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// typedValue is one variable as stored: its kind keeps a date a date and a
// whole number whole across the round trip through JSON.
type typedValue struct {
	T string `json:"t"`
	V string `json:"v"`
}

// encodeVars writes a conversation's variables for sealing.
func encodeVars(vars map[string]any) ([]byte, error) {
	out := make(map[string]typedValue, len(vars))
	for k, v := range vars {
		switch v := v.(type) {
		case nil:
			// Kept, not dropped: a variable set to nothing is still set.
			out[k] = typedValue{"n", ""}
		case string:
			out[k] = typedValue{"s", v}
		case int:
			out[k] = typedValue{"i", strconv.Itoa(v)}
		case int64:
			out[k] = typedValue{"i", strconv.FormatInt(v, 10)}
		case float64:
			out[k] = typedValue{"f", strconv.FormatFloat(v, 'g', -1, 64)}
		case bool:
			out[k] = typedValue{"b", strconv.FormatBool(v)}
		case time.Time:
			out[k] = typedValue{"t", v.Format(time.RFC3339Nano)}
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("variable %s: cannot store a %T", k, v)
			}
			out[k] = typedValue{"j", string(b)}
		}
	}
	return json.Marshal(out)
}

// decodeVars reads variables written by encodeVars.
func decodeVars(b []byte) (map[string]any, error) {
	var in map[string]typedValue
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("read variables: %w", err)
	}
	out := make(map[string]any, len(in))
	for k, tv := range in {
		var err error
		switch tv.T {
		case "n":
			out[k] = nil
		case "s":
			out[k] = tv.V
		case "i":
			out[k], err = strconv.Atoi(tv.V)
		case "f":
			out[k], err = strconv.ParseFloat(tv.V, 64)
		case "b":
			out[k], err = strconv.ParseBool(tv.V)
		case "t":
			out[k], err = time.Parse(time.RFC3339Nano, tv.V)
		case "j":
			var v any
			err = json.Unmarshal([]byte(tv.V), &v)
			out[k] = v
		default:
			err = fmt.Errorf("unknown kind %q", tv.T)
		}
		if err != nil {
			return nil, fmt.Errorf("read variable %s: %w", k, err)
		}
	}
	return out, nil
}
