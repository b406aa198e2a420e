import type { CodegenConfig } from '@graphql-codegen/cli';

// Types come from the server's checked-in SDL and the operations every
// frontend sends (the project's contract document, contract/).
const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: '../../contract/operations.graphql',
  generates: {
    'src/generated.ts': {
      plugins: ['typescript', 'typescript-operations', 'typed-document-node'],
      config: {
        scalars: { DateTime: 'string', JSON: 'unknown' },
        enumsAsTypes: true,
        avoidOptionals: true,
      },
    },
  },
};

export default config;
