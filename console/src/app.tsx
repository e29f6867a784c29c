import { Button } from 'react-aria-components'
import { Link, Redirect, Route, Router, Switch, useLocation } from 'wouter'
import { SessionProvider, usePermissions, useSession, useSessionState } from './lib/session.js'
import { ApiKeysScreen } from './screens/api-keys.js'
import { AuditScreen } from './screens/audit.js'
import { CustomersScreen } from './screens/customers.js'
import { DatasetScreen } from './screens/dataset.js'
import { DatasetsScreen } from './screens/datasets.js'
import { JobScreen } from './screens/job.js'
import { JobsScreen } from './screens/jobs.js'
import { ModelScreen } from './screens/model.js'
import { ModelsScreen } from './screens/models.js'
import { NewOrderScreen } from './screens/new-order.js'
import { OrderScreen } from './screens/order.js'
import { OrdersScreen } from './screens/orders.js'
import { ProductsScreen } from './screens/products.js'
import { SignInScreen } from './screens/sign-in.js'

export function App() {
  return (
    <Router base="/console">
      <SessionProvider>
        <Shell />
      </SessionProvider>
    </Router>
  )
}

function Shell() {
  const { session } = useSessionState()
  if (!session) return <SignInScreen />
  return <SignedIn />
}

const NAV = [
  { href: '/orders', label: 'Orders' },
  { href: '/products', label: 'Products' },
  { href: '/customers', label: 'Customers' },
  { href: '/models', label: 'Models' },
  { href: '/datasets', label: 'Datasets' },
  { href: '/jobs', label: 'Jobs' },
  { href: '/api-keys', label: 'API keys' },
] as const

function SignedIn() {
  const { me, signOut } = useSession()
  const can = usePermissions()
  const [location] = useLocation()
  const links = can.readAudit ? [...NAV, { href: '/audit', label: 'Audit log' }] : NAV
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">OrderFlow</span>
        <nav aria-label="Main">
          <ul>
            {links.map((link) => (
              <li key={link.href}>
                <Link
                  href={link.href}
                  aria-current={location.startsWith(link.href) ? 'page' : undefined}
                >
                  {link.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span data-testid="caller">{me.email}</span>{' '}
          <span className={`role role-${me.role}`} data-testid="role">
            {me.role}
          </span>
          <Button className="quiet" onPress={() => void signOut()}>
            Sign out
          </Button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Switch>
          <Route path="/orders/new" component={NewOrderScreen} />
          <Route path="/orders/:id" component={OrderScreen} />
          <Route path="/orders" component={OrdersScreen} />
          <Route path="/products" component={ProductsScreen} />
          <Route path="/customers" component={CustomersScreen} />
          <Route path="/models/:name" component={ModelScreen} />
          <Route path="/models" component={ModelsScreen} />
          <Route path="/datasets/:id" component={DatasetScreen} />
          <Route path="/datasets" component={DatasetsScreen} />
          <Route path="/jobs/:id" component={JobScreen} />
          <Route path="/jobs" component={JobsScreen} />
          <Route path="/api-keys" component={ApiKeysScreen} />
          {can.readAudit ? <Route path="/audit" component={AuditScreen} /> : null}
          <Route>
            <Redirect to="/orders" />
          </Route>
        </Switch>
      </main>
    </>
  )
}
