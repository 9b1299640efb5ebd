// Writes the Grafana dashboard that ships in the npm package (dashboards/egress-gateway.json)
// from the same source the GatewayDashboard construct renders. Usage: npm run dashboard
import * as fs from 'fs';
import * as path from 'path';
import { GatewayDashboard } from '../src/gateway-dashboard';

const out = path.resolve(__dirname, '..', 'dashboards', 'egress-gateway.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, GatewayDashboard.json());
console.log(`wrote ${path.relative(process.cwd(), out)}`);
