// What both languages must agree on outside any message: where a state root
// is by default, and what a context's name may be. The runtime (kernel/
// layout.ts, model/names.ts) and the native front door (paene-front.c,
// through the generated paene_names.h) read them from here.

/** The default state root. */
export const DEFAULT_ROOT = '/var/lib/paene';

/** A context's name: its first character, the others, its length. */
export const CONTEXT_NAME = { first: 'a-z0-9', rest: 'a-z0-9_-', maxLength: 63 } as const;

/** The name rule as a regular expression. */
export const NAME_RE = new RegExp(`^[${CONTEXT_NAME.first}][${CONTEXT_NAME.rest}]{0,${CONTEXT_NAME.maxLength - 1}}$`);

/** The C header of these (dist/gen/paene_names.h): the default root and a name check. */
export function namesHeader(source: string): string {
  // a character class such as a-z0-9_- as C conditions on c
  const cls = (c: string) => {
    const parts: string[] = [];
    for (let i = 0; i < c.length; ) {
      if (c[i + 1] === '-' && i + 2 < c.length) {
        parts.push(`(c >= '${c[i]}' && c <= '${c[i + 2]}')`);
        i += 3;
      } else {
        parts.push(`c == '${c[i] === "'" ? "\\'" : c[i]}'`);
        i += 1;
      }
    }
    return parts.join(' || ');
  };
  return [
    `/* Generated from ${source} by scripts/build-helper.js: do not edit. */`,
    '#ifndef GEN_PAENE_NAMES_H',
    '#define GEN_PAENE_NAMES_H',
    '#include <string.h>',
    `#define PAENE_DEFAULT_ROOT "${DEFAULT_ROOT}"`,
    '/* Whether n is a context name (what the runtime accepts). */',
    '__attribute__((unused)) static int paene_valid_name(const char *n) {',
    '  size_t len = strlen(n);',
    `  if (len < 1 || len > ${CONTEXT_NAME.maxLength}) return 0;`,
    '  for (size_t i = 0; i < len; i++) {',
    '    char c = n[i];',
    `    int ok = i == 0 ? (${cls(CONTEXT_NAME.first)}) : (${cls(CONTEXT_NAME.rest)});`,
    '    if (!ok) return 0;',
    '  }',
    '  return 1;',
    '}',
    '#endif',
    '',
  ].join('\n');
}
