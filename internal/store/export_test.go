package store_test

import (
	"io/fs"

	"github.com/chatr-ai/chatr/internal/store"
)

func readDir() ([]fs.DirEntry, error) { return fs.ReadDir(store.Migrations(), ".") }
