package linkcheck

import "strings"

// codeExtensions are file extensions agents mention all the time ("see
// README.md", "Main.java", "node.js/deno"). Those that are real top-level
// domains (md sh rs py pl pm cc so ps mk ac am tf ml zip mov java pub map
// build: TestCodeExtensionsThatAreDomains lists them) are links only when a
// path follows ("evil.sh/x"); those that are not are never a top-level
// domain, even with a path ("config.yaml/json" is prose).
var codeExtensions = set(`
md sh rs py pl pm cc so ps mk ac am tf ml zip mov java pub map build
js ts jsx tsx mjs cjs txt go rb cpp hpp json yaml yml toml html htm css xml csv log pdf png jpg
jpeg gif svg tar gz exe dll kt swift php sql lua ini cfg conf env lock mod sum bat vue
svelte ipynb wasm proto
`)

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}
