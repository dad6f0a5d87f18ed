// openapi-check.js -- validates an OpenAPI description (YAML or JSON):
// against the OpenAPI schema of its version, then every $ref resolved.
// Prints the error and exits 1 if it is not valid.
//
//   node tests/node/openapi-check.js docs/openapi.yaml
"use strict";
const SwaggerParser = require("@apidevtools/swagger-parser");

async function main(file) {
  const api = await SwaggerParser.validate(file);
  const ops = Object.values(api.paths).reduce(
    (n, item) => n + ["get", "put", "post", "delete", "patch"].filter((m) => item[m]).length, 0);
  console.log(`${file}: valid OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths, ${ops} operations`);
}

main(process.argv[2]).catch((e) => {
  console.error(`${process.argv[2]}: ${e.message}`);
  process.exit(1);
});
