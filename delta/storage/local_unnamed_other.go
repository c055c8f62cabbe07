//go:build !linux

package storage

import (
	"errors"
	"os"
)

var errNoUnnamed = errors.New("unnamed files are a Linux feature")

// openUnnamed is not supported here: writes use named temporary files.
func openUnnamed(string) (*os.File, error) { return nil, errNoUnnamed }

func linkUnnamed(*os.File, string) error { return errNoUnnamed }
