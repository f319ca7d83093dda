package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// fileConfig is the config file: where the room is and the agent's key.
// It holds a secret, so it is written 0600 and refused when others can read it.
type fileConfig struct {
	URL     string `json:"url,omitempty"`
	APIKey  string `json:"apiKey,omitempty"`
	AgentID string `json:"agentId,omitempty"`
	Name    string `json:"name,omitempty"`
}

// configFile is the config file's path: --config, $CHATR_CONFIG, or
// chatr/config.json in the user's config folder (~/.config on Linux).
func (a *app) configFile() (string, error) {
	if a.configPath != "" {
		return a.configPath, nil
	}
	if p := a.getenv("CHATR_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", usagef("cannot find a config folder (%v): give --config or --key", err)
	}
	return filepath.Join(dir, "chatr", "config.json"), nil
}

// config loads the config file once. A missing file is an empty config.
func (a *app) config() (*fileConfig, error) {
	if a.cfgLoaded {
		return a.cfg, nil
	}
	path, err := a.configFile()
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	a.cfg, a.cfgLoaded = cfg, true
	return cfg, nil
}

func loadConfig(path string) (*fileConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileConfig{}, nil
	}
	if err != nil {
		return nil, usagef("cannot read %s: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, usagef("cannot read %s: %v", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, usagef("%s holds an API key but is readable by others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	var cfg fileConfig
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return nil, usagef("%s is not a chatr config file: %v", path, err)
	}
	return &cfg, nil
}

// saveConfig writes cfg to path with mode 0600, creating the folder (0700).
// It writes a temporary file and renames it, so a crash never leaves half a
// file, and the key is never readable by others even for a moment.
func saveConfig(path string, cfg *fileConfig) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
