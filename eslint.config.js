import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', 'openapi/**', 'coverage/**', '.tap/**', 'test-output/**', 'bench/results/**', 'bench/profiles/**']
  }),
  {
    rules: {
      // `void promise;` marks a promise deliberately left to run (the TypeScript idiom for it).
      'no-void': ['error', { allowAsStatement: true }],
      // neostandard leaves these open; the code base has no trailing commas and no type member delimiters.
      '@stylistic/comma-dangle': ['error', 'never'],
      '@stylistic/member-delimiter-style': ['error', { multiline: { delimiter: 'none' }, singleline: { delimiter: 'comma', requireLast: false } }]
    }
  }
]
