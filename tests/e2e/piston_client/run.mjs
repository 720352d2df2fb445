// Drives the real npm piston-client: node run.mjs SERVER_URL '<json: {call, language, code, config}>'
// Prints the client's answer as JSON on stdout.
import piston from "piston-client";

const [server, request] = process.argv.slice(2);
const { call, language, code, config } = JSON.parse(request);
const client = piston({ server });
const answer = call === "runtimes"
  ? await client.runtimes()
  : await client.execute(language, code, config || {});
process.stdout.write(JSON.stringify(answer));
